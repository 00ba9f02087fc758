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

}  // namespace
}  // namespace amlq
