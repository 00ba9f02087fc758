#include <gtest/gtest.h>

#include "core/fp16.h"
#include "quant/quantizer.h"

namespace amlq {
namespace {

TEST(Quantizer, AsymmetricHandComputed) {
  // Row [-1, 0.5, 2, 3], 2 bits: range [-1, 3], scale 4/3 -> fp16 1.3330078125,
  // zero round(1 / 1.3330078125) = 1.
  const GroupParams p = group_params(-1.0f, 3.0f, 2, false);
  EXPECT_EQ(p.scale, 1.3330078125f);
  EXPECT_EQ(p.zero, 1);
  EXPECT_EQ(quantize_value(-1.0f, p.scale, p.zero, 3), 0);
  EXPECT_EQ(quantize_value(0.5f, p.scale, p.zero, 3), 1);
  EXPECT_EQ(quantize_value(2.0f, p.scale, p.zero, 3), 3);
  EXPECT_EQ(quantize_value(3.0f, p.scale, p.zero, 3), 3);  // 2.25 rounds to 2, + 1
  EXPECT_FLOAT_EQ(dequantize_value(0, p.scale, p.zero), -1.3330078125f);
  EXPECT_FLOAT_EQ(dequantize_value(3, p.scale, p.zero), 2 * 1.3330078125f);
}

TEST(Quantizer, RangeWidenedToIncludeZero) {
  // All positive: lo becomes 0, so zero = 0 and 0 is exactly representable.
  const GroupParams p = group_params(2.0f, 17.0f, 4, false);
  EXPECT_EQ(p.zero, 0);
  EXPECT_EQ(p.scale, round_to_fp16(17.0f / 15));
  // All negative: hi becomes 0, zero = maxq.
  const GroupParams n = group_params(-30.0f, -1.0f, 4, false);
  EXPECT_EQ(n.zero, 15);
  EXPECT_EQ(dequantize_value(quantize_value(0.0f, n.scale, n.zero, 15), n.scale, n.zero), 0.0f);
}

TEST(Quantizer, ZeroRangeUsesMinusOneToOne) {
  const GroupParams p = group_params(0.0f, 0.0f, 3, false);
  EXPECT_EQ(p.scale, round_to_fp16(2.0f / 7));
  EXPECT_EQ(p.zero, 4);  // round(1 / 0.28564453125) = round(3.5009)
  EXPECT_EQ(dequantize_value(quantize_value(0.0f, p.scale, p.zero, 7), p.scale, p.zero), 0.0f);
}

TEST(Quantizer, SymmetricHandComputed) {
  // amax 3, 4 bits: scale 2*3/15 = 0.4 -> fp16 0.39990234375, zero 8.
  const GroupParams p = group_params(-1.0f, 3.0f, 4, true);
  EXPECT_EQ(p.scale, 0.39990234375f);
  EXPECT_EQ(p.zero, 8);
  EXPECT_EQ(quantize_value(3.0f, p.scale, p.zero, 15), 15);  // 7.5 -> 8 (+8 = 16) clamps to 15
  EXPECT_EQ(quantize_value(-1.0f, p.scale, p.zero, 15), 5);  // round(-2.5006) = -3, + 8
}

TEST(Quantizer, TinyAndHugeRangesStayFinite) {
  for (float v : {1e-12f, 1e-30f, 1e30f, -1e30f}) {
    for (bool sym : {false, true}) {
      const GroupParams p = group_params(std::min(v, 0.0f), std::max(v, 0.0f), 4, sym);
      EXPECT_GT(p.scale, 0.0f);
      EXPECT_TRUE(std::isfinite(p.scale));
      const int q = quantize_value(v, p.scale, p.zero, 15);
      EXPECT_GE(q, 0);
      EXPECT_LE(q, 15);
      EXPECT_TRUE(std::isfinite(dequantize_value(q, p.scale, p.zero)));
    }
  }
}

}  // namespace
}  // namespace amlq
