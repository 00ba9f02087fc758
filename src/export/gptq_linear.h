#pragma once
// One linear layer in the GPTQ checkpoint format (gptq_format.h) and the two
// conversions between it and amlq's PackedLinear (quant/packed_linear.h).
#include <cstdint>
#include <string>
#include <vector>

#include "export/gptq_format.h"
#include "quant/packed_linear.h"

namespace amlq {

struct GptqLinear {
  std::string name;  // "model.layers.3.mlp.down_proj"
  int in = 0;        // input features (W's columns)
  int out = 0;       // output features (W's rows)
  int bits = 4;
  int group_size = 128;  // gptq::kWholeRowGroup for one group per row
  bool sym = false;
  bool desc_act = false;          // g_idx is not i / group_size (act-order)
  std::vector<uint32_t> qweight;  // [packed_words(in, bits), out]
  std::vector<uint32_t> qzeros;   // [groups, packed_words(out, bits)], zero - zero_offset
  std::vector<uint16_t> scales;   // [groups, out], fp16 bits
  std::vector<int32_t> g_idx;     // [in]
  std::vector<float> bias;        // [out] or empty
  int64_t groups() const { return gptq::group_count(in, group_size); }
};

// What keeps a layer out of the GPTQ format.
enum class GptqProblem { None, Parts, Bits, ZeroPoint };

struct GptqConversion {
  GptqProblem problem = GptqProblem::None;
  std::string reason;     // for people, e.g. "5-bit codes; the GPTQ format has 2, 3, 4 and 8 bits"
  GptqLinear linear;      // valid when problem == None
  int shifted_groups = 0; // (row, group) pairs whose zero point 0 was moved to 1 with codes + 1 (exact)
};

// amlq's layer in the GPTQ format (bias copied, low-rank factors ignored: they
// go to the adapter). A zero point below zero_offset is moved up, codes with it,
// when the group's codes leave room (the same weights); otherwise, and for
// several parts or a bit width the format lacks, the layer is reported, not converted.
GptqConversion to_gptq(const PackedLinear& layer, int zero_offset = gptq::kZeroOffsetV1);

// The GPTQ tensors as amlq's packed layer (codes, scales, zeros, permutation
// from g_idx, bias; no factors). Input error naming `origin` and the layer when
// the tensors are inconsistent or amlq's format cannot hold them (a g_idx whose
// groups are not consecutive runs of group_size columns in some order, a zero
// point that does not fit in `bits` bits).
PackedLinear from_gptq(const GptqLinear& layer, int zero_offset, const std::string& origin);

}  // namespace amlq
