#include <gtest/gtest.h>

#include "quant/cost_model.h"

namespace amlq {
namespace {

TEST(CostModel, HandComputedValues) {
  // 4 + (16 + 4) / 128
  EXPECT_DOUBLE_EQ(bits_per_weight(QuantSpec::parse("4b-g128"), 4096, 4096, 0, FactorFormat::Fp16), 4.15625);
  // 3 + 19 / 4096 (whole-row group)
  EXPECT_DOUBLE_EQ(bits_per_weight(QuantSpec::parse("3b-row"), 11008, 4096, 0, FactorFormat::Fp16), 3 + 19.0 / 4096);
  // 0.25 * (4 + 20/64) + 0.75 * (3 + 19/128)
  EXPECT_DOUBLE_EQ(bits_per_weight(QuantSpec::parse("25%4b-g64+75%3b-g128"), 4096, 4096, 0, FactorFormat::Fp16),
                   3.439453125);
  // rank 32 on 4096 x 4096: 32 * 8192 * 16 / 4096^2 = 0.25 (fp16), 0.125 (int8)
  EXPECT_DOUBLE_EQ(bits_per_weight(QuantSpec::parse("2b-g32"), 4096, 4096, 32, FactorFormat::Fp16),
                   2 + 18.0 / 32 + 0.25);
  EXPECT_DOUBLE_EQ(bits_per_weight(QuantSpec::parse("2b-g32"), 4096, 4096, 32, FactorFormat::Int8),
                   2 + 18.0 / 32 + 0.125);
  // Symmetric / no act-order / static cost the same: the format stores the same fields.
  EXPECT_DOUBLE_EQ(bits_per_weight(QuantSpec::parse("4b-g128-sym-noact"), 256, 512, 0, FactorFormat::Fp16), 4.15625);
  // Rectangular low-rank term: k (m + n) f / (m n) = 8 * (100 + 300) * 16 / 30000
  EXPECT_DOUBLE_EQ(bits_per_weight(QuantSpec::parse("8b-row"), 100, 300, 8, FactorFormat::Fp16),
                   8 + 24.0 / 300 + 8 * 400 * 16 / 30000.0);
}

TEST(CostModel, ShortLastGroupIsChargedAsAWholeGroup) {
  // 64 x 172 at 3b-g32: ceil(172 / 32) = 6 groups per row (5 x 32 + 12).
  EXPECT_DOUBLE_EQ(bits_per_weight(QuantSpec::parse("3b-g32"), 64, 172, 0, FactorFormat::Fp16),
                   (3 * 172 + 19 * 6) / 172.0);
  // g64: 64 + 64 + 44, ceil(172 / 64) = 3 groups.
  EXPECT_DOUBLE_EQ(bits_per_weight(QuantSpec::parse("4b-g64"), 64, 172, 0, FactorFormat::Fp16),
                   (4 * 172 + 20 * 3) / 172.0);
  // Static groups store ceil(cols / G) groups too; low-rank term unchanged.
  EXPECT_DOUBLE_EQ(bits_per_weight(QuantSpec::parse("3b-g32-static"), 64, 172, 4, FactorFormat::Int8),
                   (3 * 172 + 19 * 6) / 172.0 + 4 * (64 + 172) * 8 / (64.0 * 172));
  // Two parts: [0, 64) at 4b-g64 (1 group) and [64, 172) at 3b-g32 (108 = 3 x 32 + 12: 4 groups).
  EXPECT_DOUBLE_EQ(bits_per_weight(QuantSpec::parse("25%4b-g64+75%3b-g32"), 64, 172, 0, FactorFormat::Fp16),
                   (4 * 64 + 20 * 1 + 3 * 108 + 19 * 4) / 172.0);
  // More than the dividing formula b + (16 + b) / G would say.
  EXPECT_GT(bits_per_weight(QuantSpec::parse("3b-g32"), 64, 172, 0, FactorFormat::Fp16), 3 + 19.0 / 32);
}

}  // namespace
}  // namespace amlq
