#pragma once
// The uniform quantizer of METHOD.md 2, shared by GPTQ, RTN, dequantization and
// the packed format. One (scale, zero) pair per row and group; the scale is
// used at its stored fp16 precision everywhere so that every consumer
// reconstructs bit-identical weights.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/fp16.h"
#include "core/matrix.h"
#include "quant/quant_spec.h"

namespace amlq {

struct GroupParams {
  float scale = 1;  // already rounded to fp16
  int zero = 0;     // b-bit integer
};

// fp16 bits of a scale: never 0 (a range too small for fp16 gets the smallest
// subnormal) and never inf (clamped to the largest finite half), so no code path
// can divide by zero or produce NaN.
inline uint16_t scale_to_fp16_bits(float scale) {
  uint16_t bits = float_to_fp16(scale);
  if ((bits & 0x7fffu) == 0 || !(scale > 0)) bits = 0x0001u;
  if ((bits & 0x7c00u) == 0x7c00u) bits = 0x7bffu;
  return bits;
}

// Parameters for values whose minimum is `lo` and maximum `hi` (over one row of one group).
inline GroupParams group_params(float lo, float hi, int bits, bool symmetric) {
  const int maxq = (1 << bits) - 1;
  GroupParams p;
  if (symmetric) {
    float amax = std::max(std::abs(lo), std::abs(hi));
    if (!(amax > 0)) amax = 1;
    p.scale = fp16_to_float(scale_to_fp16_bits(2 * amax / maxq));
    p.zero = (maxq + 1) / 2;
    return p;
  }
  lo = std::min(lo, 0.0f);
  hi = std::max(hi, 0.0f);
  if (lo == 0 && hi == 0) {
    lo = -1;
    hi = 1;
  }
  p.scale = fp16_to_float(scale_to_fp16_bits((hi - lo) / maxq));
  p.zero = std::clamp(static_cast<int>(std::nearbyint(-lo / p.scale)), 0, maxq);
  return p;
}

inline int quantize_value(float w, float scale, int zero, int maxq) {
  const float q = std::nearbyint(w / scale) + static_cast<float>(zero);
  return static_cast<int>(std::clamp(q, 0.0f, static_cast<float>(maxq)));
}

inline float dequantize_value(int q, float scale, int zero) { return scale * static_cast<float>(q - zero); }

// W_hat in the ORIGINAL column order.
MatrixF dequantize(const QuantizedMatrix& q);

// Groups per row over `span` columns: consecutive runs of `group` columns, the
// last one shorter when `group` does not divide `span` (as the GPTQ reference).
// span is the part's width, or all columns with static groups.
inline int group_count(int span, int group) { return (span + group - 1) / group; }

// Index of the group that processing-order column `col` (inside `part`) uses:
// with static groups the group follows the ORIGINAL column perm[col]. Groups
// start every part.group columns, so a shorter last group needs no special case.
inline int group_of(const QuantizedMatrix::Part& part, int col, int original_col, bool static_groups) {
  return static_groups ? original_col / part.group : (col - part.col_begin) / part.group;
}

}  // namespace amlq
