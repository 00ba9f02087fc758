#pragma once
// The uniform quantizer of METHOD.md section 2 in a form device kernels share
// with host code: group parameters from a group's range, codes, dequantized
// values. The scale is rounded to fp16 first and every later step uses the
// rounded value, as the stored model will.
#include <cmath>
#include <cstdint>

#include "core/fp16.h"

namespace amlq::cuda {

struct GroupParams {
  float scale = 1;  // fp16-representable
  float zero = 0;   // an integer in [0, 2^bits - 1], held as float
};

// Mirrors quant/quantizer.h (the CPU oracle; host-only) operation for operation,
// so both backends produce the same scale bits and codes for the same weights.

// Smallest positive fp16 (subnormal) and largest finite fp16: a range that
// underflows or overflows fp16 still gets a finite, non-zero scale.
inline constexpr float kMinFp16Scale = 5.9604644775390625e-08f;
inline constexpr float kMaxFp16Scale = 65504.0f;

AMLQ_HD inline float stored_scale(float scale) {
  if (!(scale > 0.0f)) return kMinFp16Scale;
  const float rounded = round_to_fp16(scale);
  if (rounded == 0.0f) return kMinFp16Scale;
  return rounded > kMaxFp16Scale ? kMaxFp16Scale : rounded;
}

// lo/hi: min and max of the group's weights. The range is widened to include 0
// (GPTQ reference); an all-zero group uses [-1, 1]. Symmetric: [-a, a] with
// a = max(|lo|, |hi|) and the zero fixed at 2^(bits-1).
AMLQ_HD inline GroupParams group_params(float lo, float hi, int bits, bool symmetric) {
  const float maxq = static_cast<float>((1 << bits) - 1);
  lo = fminf(lo, 0.0f);
  hi = fmaxf(hi, 0.0f);
  if (symmetric) {
    const float a = fmaxf(-lo, hi);
    lo = -a;
    hi = a;
  }
  if (lo == 0.0f && hi == 0.0f) {
    lo = -1.0f;
    hi = 1.0f;
  }
  GroupParams p;
  p.scale = stored_scale((hi - lo) / maxq);
  if (symmetric) {
    p.zero = static_cast<float>(1 << (bits - 1));
  } else {
    p.zero = fminf(fmaxf(rintf(-lo / p.scale), 0.0f), maxq);
  }
  return p;
}

// Round half to even (rintf), as torch.round in the GPTQ reference.
AMLQ_HD inline int quantize_code(float w, GroupParams p, int bits) {
  const float maxq = static_cast<float>((1 << bits) - 1);
  const float q = rintf(w / p.scale) + p.zero;
  return static_cast<int>(fminf(fmaxf(q, 0.0f), maxq));
}

AMLQ_HD inline float dequantize_code(int code, GroupParams p) {
  return p.scale * (static_cast<float>(code) - p.zero);
}

AMLQ_HD inline float dequantize_code(uint32_t code, float scale, uint32_t zero) {
  return scale * (static_cast<float>(code) - static_cast<float>(zero));
}

}  // namespace amlq::cuda
