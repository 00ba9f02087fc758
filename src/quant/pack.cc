#include "quant/pack.h"

#include "core/error.h"
#include "core/fp16.h"
#include "lowrank/factor_rounding.h"
#include "quant/cost_model.h"
#include "quant/packed_format.h"
#include "quant/quantizer.h"

namespace amlq {
namespace {

void check_shape(const PackedLinear& l) {
  AMLQ_REQUIRE(l.rows > 0 && l.cols > 0, "packed layer '{}' has shape [{} x {}]", l.name, l.rows, l.cols);
  AMLQ_REQUIRE(l.perm.empty() || static_cast<int>(l.perm.size()) == l.cols,
               "packed layer '{}': permutation has {} entries for {} columns", l.name, l.perm.size(), l.cols);
  std::vector<char> seen(l.perm.size(), 0);
  for (const int32_t c : l.perm) {
    AMLQ_REQUIRE(c >= 0 && c < l.cols && !seen[static_cast<size_t>(c)],
                 "packed layer '{}': the permutation is not one of 0..{} (entry {})", l.name, l.cols - 1, c);
    seen[static_cast<size_t>(c)] = 1;
  }
  for (const auto& p : l.parts) {
    const int64_t width = p.col_end - p.col_begin;
    AMLQ_REQUIRE(packed::valid_bits(p.bits) && p.group > 0 && width > 0 && p.num_groups > 0 &&
                     p.codes.size() == static_cast<size_t>(l.rows * packed::words_per_row(width, p.bits)) &&
                     p.scales.size() == static_cast<size_t>(l.rows) * p.num_groups &&
                     p.zeros.size() == static_cast<size_t>(l.rows * packed::words_per_row(p.num_groups, p.bits)),
                 "packed layer '{}': part [{}, {}) has inconsistent sizes", l.name, p.col_begin, p.col_end);
    // Groups of `group` columns, the last one possibly shorter; static groups
    // run over all (original) columns. A smaller count would index past the scales.
    const int span = l.spec.static_groups ? l.cols : static_cast<int>(width);
    AMLQ_REQUIRE(p.num_groups == group_count(span, p.group),
                 "packed layer '{}': part [{}, {}) stores {} groups of {} columns, expected ceil({} / {}) = {}", l.name,
                 p.col_begin, p.col_end, p.num_groups, p.group, span, p.group, group_count(span, p.group));
  }
}

}  // namespace

PackedLinear pack_linear(const std::string& name, const QuantizedMatrix& q, const LowRankFactors* factors,
                         LowRankMethod method) {
  PackedLinear out;
  out.name = name;
  out.rows = q.rows;
  out.cols = q.cols;
  out.spec = q.spec;
  out.perm = q.perm;
  for (const auto& part : q.parts) {
    PackedPart pp;
    pp.col_begin = part.col_begin;
    pp.col_end = part.col_end;
    pp.bits = part.bits;
    pp.group = part.group;
    pp.num_groups = part.num_groups;
    const int width = part.col_end - part.col_begin;
    const int64_t code_words = packed::words_per_row(width, part.bits);
    const int64_t zero_words = packed::words_per_row(part.num_groups, part.bits);
    pp.codes.assign(static_cast<size_t>(q.rows * code_words), 0);
    pp.zeros.assign(static_cast<size_t>(q.rows * zero_words), 0);
    pp.scales = part.scales;
    for (int i = 0; i < q.rows; ++i) {
      const uint8_t* codes = q.codes.data() + static_cast<size_t>(i) * q.cols + part.col_begin;
      uint32_t* words = pp.codes.data() + i * code_words;
      for (int j = 0; j < width; ++j) packed::put_code(words, j, part.bits, codes[j]);
      uint32_t* zwords = pp.zeros.data() + i * zero_words;
      for (int g = 0; g < part.num_groups; ++g)
        packed::put_code(zwords, g, part.bits, part.zeros[static_cast<size_t>(i) * part.num_groups + g]);
    }
    out.parts.push_back(std::move(pp));
  }
  const int rank = factors ? factors->rank() : 0;
  if (rank > 0) {
    AMLQ_ASSERT(factors->a.rows() == q.rows && factors->b.rows() == rank && factors->b.cols() == q.cols,
                "factors A [{} x {}], B [{} x {}] for [{} x {}]", factors->a.rows(), factors->a.cols(),
                factors->b.rows(), factors->b.cols(), q.rows, q.cols);
    out.lowrank = method;
    out.factor_format = factors->format;
    out.rank = rank;
    if (factors->format == FactorFormat::Fp16) {
      out.a_fp16.resize(factors->a.size());
      out.b_fp16.resize(factors->b.size());
      for (Eigen::Index i = 0; i < factors->a.size(); ++i) out.a_fp16[i] = float_to_fp16(factors->a.data()[i]);
      for (Eigen::Index i = 0; i < factors->b.size(); ++i) out.b_fp16[i] = float_to_fp16(factors->b.data()[i]);
    } else {
      // Factors arrive already rounded (lowrank/factor_rounding.h): re-encoding is exact.
      encode_int8_rows(factors->a, out.a_int8, out.a_scales);
      encode_int8_rows(factors->b, out.b_int8, out.b_scales);
    }
  } else {
    out.lowrank = LowRankMethod::None;
  }
  out.bpw = bits_per_weight(q.spec, q.rows, q.cols, out.rank, out.factor_format);
  return out;
}

QuantizedMatrix unpack_codes(const PackedLinear& layer) {
  check_shape(layer);
  QuantizedMatrix q;
  q.rows = layer.rows;
  q.cols = layer.cols;
  q.spec = layer.spec;
  q.perm = layer.perm;
  q.codes.assign(static_cast<size_t>(q.rows) * q.cols, 0);
  for (const auto& pp : layer.parts) {
    QuantizedMatrix::Part part;
    part.col_begin = pp.col_begin;
    part.col_end = pp.col_end;
    part.bits = pp.bits;
    part.group = pp.group;
    part.num_groups = pp.num_groups;
    part.scales = pp.scales;
    part.zeros.resize(static_cast<size_t>(q.rows) * pp.num_groups);
    const int width = pp.col_end - pp.col_begin;
    const int64_t code_words = packed::words_per_row(width, pp.bits);
    const int64_t zero_words = packed::words_per_row(pp.num_groups, pp.bits);
    for (int i = 0; i < q.rows; ++i) {
      uint8_t* codes = q.codes.data() + static_cast<size_t>(i) * q.cols + pp.col_begin;
      const uint32_t* words = pp.codes.data() + i * code_words;
      for (int j = 0; j < width; ++j) codes[j] = static_cast<uint8_t>(packed::get_code(words, j, pp.bits));
      const uint32_t* zwords = pp.zeros.data() + i * zero_words;
      for (int g = 0; g < pp.num_groups; ++g)
        part.zeros[static_cast<size_t>(i) * pp.num_groups + g] = static_cast<uint8_t>(packed::get_code(zwords, g, pp.bits));
    }
    q.parts.push_back(std::move(part));
  }
  return q;
}

LowRankFactors unpack_factors(const PackedLinear& layer) {
  LowRankFactors f;
  f.format = layer.factor_format;
  const int k = layer.rank;
  f.a.resize(layer.rows, k);
  f.b.resize(k, layer.cols);
  if (k == 0) return f;
  if (layer.factor_format == FactorFormat::Fp16) {
    AMLQ_REQUIRE(layer.a_fp16.size() == static_cast<size_t>(f.a.size()) &&
                     layer.b_fp16.size() == static_cast<size_t>(f.b.size()),
                 "packed layer '{}': fp16 factors have the wrong size for rank {}", layer.name, k);
    for (Eigen::Index i = 0; i < f.a.size(); ++i) f.a.data()[i] = fp16_to_float(layer.a_fp16[i]);
    for (Eigen::Index i = 0; i < f.b.size(); ++i) f.b.data()[i] = fp16_to_float(layer.b_fp16[i]);
  } else {
    AMLQ_REQUIRE(layer.a_int8.size() == static_cast<size_t>(f.a.size()) &&
                     layer.b_int8.size() == static_cast<size_t>(f.b.size()) &&
                     layer.a_scales.size() == static_cast<size_t>(layer.rows) &&
                     layer.b_scales.size() == static_cast<size_t>(k),
                 "packed layer '{}': int8 factors have the wrong size for rank {}", layer.name, k);
    f.a = decode_int8_rows(layer.a_int8, layer.a_scales, layer.rows, k);
    f.b = decode_int8_rows(layer.b_int8, layer.b_scales, k, layer.cols);
  }
  return f;
}

MatrixF dequantize(const PackedLinear& layer, bool include_lowrank) {
  MatrixF w = dequantize(unpack_codes(layer));
  if (include_lowrank && layer.rank > 0) {
    const LowRankFactors f = unpack_factors(layer);
    w.noalias() += f.a * f.b;
  }
  return w;
}

}  // namespace amlq
