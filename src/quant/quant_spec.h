#pragma once
// How one linear layer is quantized. A spec splits the (act-ordered) input
// columns into parts, each with its own bit width and group size: the most
// salient columns may get more bits (METHOD.md sections 2, 3, 6).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace amlq {

struct QuantPart {
  int bits = 4;         // 2..8
  int group = 128;      // columns per group; 0 = the whole row is one group
  double fraction = 1;  // share of the columns, in processing order
  bool operator==(const QuantPart&) const = default;
};

struct QuantSpec {
  std::vector<QuantPart> parts{QuantPart{}};
  bool symmetric = false;
  bool act_order = true;
  // With act_order: group parameters come from consecutive ORIGINAL columns,
  // computed before the permutation (single part only).
  bool static_groups = false;
  bool operator==(const QuantSpec&) const = default;

  // "4b-g128", "3b-row", "25%4b-g64+75%3b-g128"; suffixes "-sym", "-noact", "-static".
  std::string label() const;
  static QuantSpec parse(std::string_view label);  // throws Usage on malformed labels
  // Column ranges [begin, end) of each part for n columns; group-aligned where possible.
  std::vector<std::pair<int, int>> part_columns(int cols) const;
  // Throws Input (naming the layer) if this spec cannot be applied to rows x cols,
  // e.g. a group size larger than the part's columns (a shorter last group is fine).
  void validate(int rows, int cols, const std::string& layer_name) const;
};

// Options of the GPTQ solver itself (not part of the stored format).
struct GptqOptions {
  double damp = 0.01;        // lambda: H += lambda * mean(diag H) * I
  int max_damp_retries = 3;  // x10 each time Cholesky fails
  int block_size = 128;
  bool error_feedback = true;  // false = RTN with the same quantizer
};

// The quantized form of one matrix, codes unpacked (one byte per code).
struct QuantizedMatrix {
  int rows = 0;
  int cols = 0;
  QuantSpec spec;
  // perm[j] = original column processed j-th; empty means identity.
  std::vector<int32_t> perm;
  // rows x cols codes, row-major, columns in processing order.
  std::vector<uint8_t> codes;
  struct Part {
    int col_begin = 0;  // in processing order
    int col_end = 0;
    int bits = 4;
    int group = 128;  // resolved: never 0 (a whole-row group stores group = part width)
    int num_groups = 0;
    std::vector<uint16_t> scales;  // rows x num_groups, fp16 bits
    std::vector<uint8_t> zeros;    // rows x num_groups
  };
  std::vector<Part> parts;
  // Solver diagnostics.
  double damp_used = 0;       // the lambda finally used (options.damp * 10^damp_escalations); 0 for RTN
  int damp_escalations = 0;
  int dead_columns = 0;
  // tr(E H E^T) under the undamped H, a free by-product of GPTQ's error feedback
  // (quant/gptq.h); relative accuracy ~1e-4 (float32 updates). Negative when
  // unknown (RTN): use quant/error.h then.
  double output_error = -1;
};

}  // namespace amlq
