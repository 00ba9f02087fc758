#pragma once
// A quantized linear layer as stored in the HDF5 model: packed codes (one word
// stream per part), fp16 scales, packed zeros, optional act-order permutation
// and optional low-rank factors. Layout of the words: quant/packed_format.h.
#include <cstdint>
#include <string>
#include <vector>

#include "lowrank/lowrank_types.h"
#include "quant/quant_spec.h"

namespace amlq {

struct PackedPart {
  int col_begin = 0;  // processing-order columns [col_begin, col_end)
  int col_end = 0;
  int bits = 4;
  int group = 128;
  int num_groups = 0;
  std::vector<uint32_t> codes;   // rows x words_per_row(col_end - col_begin, bits)
  std::vector<uint16_t> scales;  // rows x num_groups, fp16 bits
  std::vector<uint32_t> zeros;   // rows x words_per_row(num_groups, bits)
};

struct PackedLinear {
  std::string name;  // "model.layers.3.mlp.down_proj"
  int rows = 0;
  int cols = 0;
  QuantSpec spec;
  std::vector<int32_t> perm;  // empty: identity
  std::vector<PackedPart> parts;

  // Low-rank correction; rank 0 = none.
  LowRankMethod lowrank = LowRankMethod::None;
  FactorFormat factor_format = FactorFormat::Fp16;
  int rank = 0;
  std::vector<uint16_t> a_fp16;   // rows x rank (fp16 format)
  std::vector<uint16_t> b_fp16;   // rank x cols
  std::vector<int8_t> a_int8;     // rows x rank (int8 format), scale per row of A
  std::vector<uint16_t> a_scales; // rows, fp16
  std::vector<int8_t> b_int8;     // rank x cols, scale per row of B
  std::vector<uint16_t> b_scales; // rank, fp16

  std::vector<float> bias;  // empty when the layer has none

  double eps = 0;  // measured normalized output error of the stored result
  double bpw = 0;  // cost model (quant/cost_model.h)
};

}  // namespace amlq
