#include "export/gptq_linear.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "quant/pack.h"
#include "quant/quantizer.h"

namespace amlq {

GptqConversion to_gptq(const PackedLinear& layer, int zero_offset) {
  GptqConversion result;
  if (layer.parts.size() != 1) {
    result.problem = GptqProblem::Parts;
    result.reason = fmt::format("{} mixes {} parts inside the layer; GPTQ has one bit width and group size per layer",
                                layer.spec.label(), layer.parts.size());
    return result;
  }
  const PackedPart& part = layer.parts[0];
  if (!gptq::supported_bits(part.bits)) {
    result.problem = GptqProblem::Bits;
    result.reason = fmt::format("{}-bit codes; the GPTQ format has 2, 3, 4 and 8 bits", part.bits);
    return result;
  }
  QuantizedMatrix q = unpack_codes(layer);
  const int rows = layer.rows, cols = layer.cols, bits = part.bits, G = part.group;
  const int groups = part.num_groups;
  const uint32_t maxq = (1u << bits) - 1u;
  // A whole-row spec is GPTQ's group_size -1; any other keeps its G (also when G = cols).
  const bool whole_row = layer.spec.parts.at(0).group == 0;
  AMLQ_ASSERT(gptq::group_count(cols, whole_row ? gptq::kWholeRowGroup : G) == groups,
              "layer '{}': {} groups of {} over {} columns", layer.name, groups, G, cols);

  // Original column of each processing-order column, and the group it uses.
  std::vector<int32_t> original(static_cast<size_t>(cols));
  std::iota(original.begin(), original.end(), 0);
  if (!q.perm.empty()) original = q.perm;
  std::vector<int32_t> g_idx(static_cast<size_t>(cols));
  for (int j = 0; j < cols; ++j) {
    const int i = original[static_cast<size_t>(j)];
    g_idx[static_cast<size_t>(i)] = whole_row ? 0 : (layer.spec.static_groups ? i / G : j / G);
  }

  // Zero points below the offset: exact when every code of the group can move up with it.
  auto& qpart = q.parts[0];
  std::vector<uint32_t> max_code(static_cast<size_t>(rows) * groups, 0);
  for (int o = 0; o < rows; ++o)
    for (int j = 0; j < cols; ++j) {
      const size_t g = static_cast<size_t>(o) * groups + g_idx[static_cast<size_t>(original[static_cast<size_t>(j)])];
      max_code[g] = std::max<uint32_t>(max_code[g], q.codes[static_cast<size_t>(o) * cols + j]);
    }
  int stuck = 0, first_row = -1, first_group = -1;
  std::vector<uint8_t> shift(static_cast<size_t>(rows) * groups, 0);
  for (int o = 0; o < rows; ++o)
    for (int g = 0; g < groups; ++g) {
      const size_t k = static_cast<size_t>(o) * groups + g;
      const int z = qpart.zeros[k];
      if (z >= zero_offset) continue;
      const uint32_t up = static_cast<uint32_t>(zero_offset - z);
      if (max_code[k] + up <= maxq) {
        shift[k] = static_cast<uint8_t>(up);
        ++result.shifted_groups;
      } else if (stuck++ == 0) {
        first_row = o;
        first_group = g;
      }
    }
  if (stuck > 0) {
    result.problem = GptqProblem::ZeroPoint;
    result.reason = fmt::format(
        "{} group(s) have zero point 0 and use the full code range (first: row {}, group {}); the GPTQ format stores "
        "zero - 1, which cannot be 0",
        stuck, first_row, first_group);
    return result;
  }

  GptqLinear& out = result.linear;
  out.name = layer.name;
  out.in = cols;
  out.out = rows;
  out.bits = bits;
  out.group_size = whole_row ? gptq::kWholeRowGroup : G;
  out.sym = layer.spec.symmetric;
  out.g_idx = g_idx;
  out.desc_act = false;
  for (int i = 0; i < cols; ++i)
    if (g_idx[static_cast<size_t>(i)] != (whole_row ? 0 : i / G)) out.desc_act = true;
  const int64_t weight_words = gptq::packed_words(cols, bits);
  const int64_t zero_words = gptq::packed_words(rows, bits);
  out.qweight.assign(static_cast<size_t>(weight_words * rows), 0);
  out.qzeros.assign(static_cast<size_t>(groups * zero_words), 0);
  out.scales.assign(static_cast<size_t>(groups) * rows, 0);
  for (int o = 0; o < rows; ++o) {
    for (int j = 0; j < cols; ++j) {
      const int i = original[static_cast<size_t>(j)];
      const size_t k = static_cast<size_t>(o) * groups + g_idx[static_cast<size_t>(i)];
      const uint32_t code = q.codes[static_cast<size_t>(o) * cols + j] + shift[k];
      gptq::put_code(out.qweight.data() + o, rows, i, bits, code);
    }
    for (int g = 0; g < groups; ++g) {
      const size_t k = static_cast<size_t>(o) * groups + g;
      const uint32_t stored = static_cast<uint32_t>(qpart.zeros[k] + shift[k] - zero_offset);
      gptq::put_code(out.qzeros.data() + static_cast<size_t>(g) * zero_words, 1, o, bits, stored);
      out.scales[static_cast<size_t>(g) * rows + o] = qpart.scales[k];
    }
  }
  out.bias = layer.bias;
  return result;
}

PackedLinear from_gptq(const GptqLinear& g, int zero_offset, const std::string& origin) {
  const std::string where = fmt::format("{}: {}", origin, g.name);
  AMLQ_REQUIRE(g.in > 0 && g.out > 0, "{}: shape [{} x {}]", where, g.out, g.in);
  AMLQ_REQUIRE(gptq::supported_bits(g.bits),
               "{}: {}-bit codes are not supported (the GPTQ format has 2, 3, 4 and 8 bits; GPTQModel's planar "
               "5/6/7-bit layout is not read)",
               where, g.bits);
  AMLQ_REQUIRE(g.group_size == gptq::kWholeRowGroup || g.group_size > 0, "{}: group_size {} is not valid", where,
               g.group_size);
  const int64_t groups = g.groups();
  const int64_t weight_words = gptq::packed_words(g.in, g.bits), zero_words = gptq::packed_words(g.out, g.bits);
  AMLQ_REQUIRE(g.qweight.size() == static_cast<size_t>(weight_words * g.out), "{}.qweight: {} words, expected [{}, {}]",
               where, g.qweight.size(), weight_words, g.out);
  AMLQ_REQUIRE(g.qzeros.size() == static_cast<size_t>(groups * zero_words), "{}.qzeros: {} words, expected [{}, {}]",
               where, g.qzeros.size(), groups, zero_words);
  AMLQ_REQUIRE(g.scales.size() == static_cast<size_t>(groups * g.out), "{}.scales: {} values, expected [{}, {}]",
               where, g.scales.size(), groups, g.out);
  AMLQ_REQUIRE(g.g_idx.size() == static_cast<size_t>(g.in), "{}.g_idx: {} entries for {} input features", where,
               g.g_idx.size(), g.in);
  const int G = g.group_size == gptq::kWholeRowGroup ? g.in : std::min(g.group_size, g.in);
  const bool whole_row = g.group_size == gptq::kWholeRowGroup || g.group_size > g.in;

  // amlq stores act-order as a permutation after which groups are consecutive
  // runs of G columns: sort the columns by group (stably) and check the counts.
  std::vector<int64_t> count(static_cast<size_t>(groups), 0);
  bool plain = true;
  for (int i = 0; i < g.in; ++i) {
    const int32_t k = g.g_idx[static_cast<size_t>(i)];
    AMLQ_REQUIRE(k >= 0 && k < groups, "{}.g_idx[{}] = {} is outside [0, {})", where, i, k, groups);
    ++count[static_cast<size_t>(k)];
    if (k != i / G) plain = false;
  }
  for (int64_t k = 0; k < groups; ++k) {
    const int64_t expected = std::min<int64_t>(G, g.in - k * G);
    AMLQ_REQUIRE(count[static_cast<size_t>(k)] == expected,
                 "{}.g_idx puts {} columns in group {}; amlq's format needs groups of {} columns (the last one "
                 "shorter) in act order, so this layer cannot be represented",
                 where, count[static_cast<size_t>(k)], k, G);
  }
  QuantizedMatrix q;
  q.rows = g.out;
  q.cols = g.in;
  q.spec.parts = {QuantPart{g.bits, whole_row ? 0 : G, 1.0}};
  q.spec.symmetric = g.sym;
  q.spec.act_order = !plain;
  q.spec.static_groups = false;
  if (!plain) {
    q.perm.resize(static_cast<size_t>(g.in));
    std::iota(q.perm.begin(), q.perm.end(), 0);
    std::stable_sort(q.perm.begin(), q.perm.end(), [&](int32_t a, int32_t b) {
      return g.g_idx[static_cast<size_t>(a)] < g.g_idx[static_cast<size_t>(b)];
    });
  }
  QuantizedMatrix::Part part;
  part.col_begin = 0;
  part.col_end = g.in;
  part.bits = g.bits;
  part.group = G;
  part.num_groups = static_cast<int>(groups);
  part.scales.resize(static_cast<size_t>(groups) * g.out);
  part.zeros.resize(static_cast<size_t>(groups) * g.out);
  const int maxq = (1 << g.bits) - 1;
  for (int o = 0; o < g.out; ++o)
    for (int64_t k = 0; k < groups; ++k) {
      const int z =
          static_cast<int>(gptq::get_code(g.qzeros.data() + k * zero_words, 1, o, g.bits)) + zero_offset;
      AMLQ_REQUIRE(z <= maxq,
                   "{}.qzeros: row {} group {} stores {}, a zero point of {} that does not fit in {} bits (a zero "
                   "point of 0 written under the zero-minus-one convention?)",
                   where, o, k, z - zero_offset, z, g.bits);
      part.zeros[static_cast<size_t>(o) * groups + k] = static_cast<uint8_t>(z);
      part.scales[static_cast<size_t>(o) * groups + k] = g.scales[static_cast<size_t>(k) * g.out + o];
    }
  q.codes.resize(static_cast<size_t>(g.out) * g.in);
  for (int o = 0; o < g.out; ++o)
    for (int j = 0; j < g.in; ++j) {
      const int i = plain ? j : q.perm[static_cast<size_t>(j)];
      q.codes[static_cast<size_t>(o) * g.in + j] =
          static_cast<uint8_t>(gptq::get_code(g.qweight.data() + o, g.out, i, g.bits));
    }
  q.parts.push_back(std::move(part));
  PackedLinear packed = pack_linear(g.name, q, nullptr, LowRankMethod::None);
  packed.bias = g.bias;
  return packed;
}

}  // namespace amlq
