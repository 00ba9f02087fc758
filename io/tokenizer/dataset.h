#pragma once
// Token-id datasets and the calibration sampler.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "io/tokenizer/tokenizer.h"

namespace amlq {

// By extension: .u16 / .u32 little-endian ids; .npy 1-D uint16/uint32/int32/int64
// (little-endian, C order); anything else is UTF-8 text, tokenized as one string
// with add_special=true (so e.g. BOS comes first). tokenizer may be null for id
// files (an Input error for text). Ids outside [0, vocab_size): Input error naming
// the file and the position. vocab_size <= 0 skips that check.
std::vector<int32_t> load_token_ids(const std::string& path, const Tokenizer* tokenizer, int vocab_size);
// True for the extensions load_token_ids reads as ids (.u16, .u32, .npy): no tokenizer needed.
bool is_token_id_file(const std::string& path);

// How load_token_ids reads a file, chosen by its extension.
enum class DatasetFormat { U16, U32, Npy, Text };
DatasetFormat dataset_format(const std::string& path);
// The parser behind load_token_ids, on the file's bytes (`origin` names them in errors).
std::vector<int32_t> parse_token_ids(std::string_view data, DatasetFormat format, const std::string& origin,
                                     const Tokenizer* tokenizer, int vocab_size);

struct CalibrationSpec {
  int num_samples = 128;
  int seqlen = 256;
  uint64_t seed = 0;
  // true: GPTQ's convention, each sample starts at a random offset (may overlap);
  // false: consecutive non-overlapping windows from the start.
  bool random_offsets = true;
  std::string describe() const;  // "128 x 256 tokens, random offsets (seed 0)"
};

// Returns num_samples windows of seqlen ids each.
// Random offsets: offset_i = draw_i mod (ids.size() - seqlen), draw_i the i-th output
// of std::mt19937_64(seed) (fully specified by the standard, so identical on every
// platform; no std::uniform_int_distribution, whose algorithm is unspecified).
// Input error if ids.size() < seqlen + 1, or (consecutive windows) if fewer than
// num_samples whole windows fit.
std::vector<std::vector<int32_t>> sample_calibration(std::span<const int32_t> ids, const CalibrationSpec& spec);

}  // namespace amlq
