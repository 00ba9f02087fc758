#include <gtest/gtest.h>
#include <fmt/format.h>

#include "backend/backend.h"
#include "core/error.h"
#include "lowrank/factor_rounding.h"
#include "quant/cost_model.h"
#include "quant/gptq.h"
#include "quant/pack.h"
#include "quant/packed_format.h"
#include "quant/quantizer.h"
#include "tests/quant/quant_test_util.h"

namespace amlq {
namespace {

void expect_same_codes(const QuantizedMatrix& a, const QuantizedMatrix& b) {
  EXPECT_EQ(a.rows, b.rows);
  EXPECT_EQ(a.cols, b.cols);
  EXPECT_EQ(a.spec, b.spec);
  EXPECT_EQ(a.perm, b.perm);
  EXPECT_EQ(a.codes, b.codes);
  ASSERT_EQ(a.parts.size(), b.parts.size());
  for (size_t p = 0; p < a.parts.size(); ++p) {
    EXPECT_EQ(a.parts[p].col_begin, b.parts[p].col_begin);
    EXPECT_EQ(a.parts[p].col_end, b.parts[p].col_end);
    EXPECT_EQ(a.parts[p].bits, b.parts[p].bits);
    EXPECT_EQ(a.parts[p].group, b.parts[p].group);
    EXPECT_EQ(a.parts[p].num_groups, b.parts[p].num_groups);
    EXPECT_EQ(a.parts[p].scales, b.parts[p].scales);
    EXPECT_EQ(a.parts[p].zeros, b.parts[p].zeros);
  }
}

TEST(Pack, RoundTripEveryBitWidthAndOddShapes) {
  struct Shape {
    int rows, cols;
    const char* group;
  };
  for (int bits = 2; bits <= 8; ++bits) {
    for (const Shape s : {Shape{1, 37, "row"}, Shape{5, 33, "row"}, Shape{3, 96, "g32"}, Shape{7, 160, "g32"},
                          Shape{4, 37, "g16"}, Shape{6, 172, "g32"}, Shape{2, 172, "g64"}}) {  // short last groups
      const QuantSpec spec = QuantSpec::parse(fmt::format("{}b-{}", bits, s.group));
      const MatrixF w = test::random_weights(s.rows, s.cols, 100 + bits);
      const MatrixD h = test::realistic_hessian(s.cols, 200 + bits);
      const QuantizedMatrix q = gptq_quantize(w, h, spec, GptqOptions{});
      const PackedLinear packed = pack_linear("l", q, nullptr, LowRankMethod::None);
      ASSERT_EQ(packed.parts.size(), 1u);
      EXPECT_EQ(packed.parts[0].codes.size(), size_t(s.rows * packed::words_per_row(s.cols, bits)));
      expect_same_codes(unpack_codes(packed), q);
      EXPECT_EQ(dequantize(packed, false), dequantize(q)) << bits << "b " << s.rows << "x" << s.cols;
      EXPECT_EQ(packed.bpw, bits_per_weight(spec, s.rows, s.cols, 0, FactorFormat::Fp16));
    }
  }
}

TEST(Pack, RoundTripMixedPartsAndStaticGroups) {
  const MatrixF w = test::random_weights(9, 256, 1);
  const MatrixD h = test::realistic_hessian(256, 2);
  for (const char* label : {"25%8b-g32+75%2b-g64", "50%3b-row+50%5b-g32", "4b-g64-static", "7b-g32-sym-noact"}) {
    const QuantizedMatrix q = gptq_quantize(w, h, QuantSpec::parse(label), GptqOptions{});
    const PackedLinear packed = pack_linear("l", q, nullptr, LowRankMethod::None);
    expect_same_codes(unpack_codes(packed), q);
    EXPECT_EQ(dequantize(packed, false), dequantize(q)) << label;
  }
}

TEST(Pack, RoundTripShortLastGroups) {
  // 172 columns as the real model's mlp.down_proj; every spec leaves a shorter
  // last group somewhere, including static groups over the original columns.
  const MatrixF w = test::random_weights(11, 172, 12);
  const MatrixD h = test::realistic_hessian(172, 13);
  for (const char* label : {"3b-g32", "5b-g64-sym", "25%8b-g64+75%2b-g32", "98%3b-g16+2%4b-row", "4b-g32-static",
                            "6b-g128-noact"}) {
    const QuantizedMatrix q = gptq_quantize(w, h, QuantSpec::parse(label), GptqOptions{});
    int groups_per_row = 0;
    for (const auto& part : q.parts) groups_per_row += part.num_groups;
    const PackedLinear packed = pack_linear("l", q, nullptr, LowRankMethod::None);
    for (size_t p = 0; p < packed.parts.size(); ++p) {
      const auto& pp = packed.parts[p];
      EXPECT_EQ(pp.num_groups, (pp.col_end - pp.col_begin + pp.group - 1) / pp.group) << label;
      EXPECT_EQ(pp.zeros.size(), size_t(11 * packed::words_per_row(pp.num_groups, pp.bits))) << label;
    }
    expect_same_codes(unpack_codes(packed), q);
    EXPECT_EQ(dequantize(packed, false), dequantize(q)) << label;
    EXPECT_EQ(packed.bpw, bits_per_weight(q.spec, 11, 172, 0, FactorFormat::Fp16)) << label;
    // The cost model charges exactly the stored groups: 16-bit scale + b-bit zero each.
    double stored_bits = 0;
    for (const auto& part : q.parts)
      stored_bits += double(part.bits) * (part.col_end - part.col_begin) + (16.0 + part.bits) * part.num_groups;
    EXPECT_DOUBLE_EQ(packed.bpw, stored_bits / 172) << label << " " << groups_per_row << " groups";
  }
}

TEST(Pack, UnpackRejectsAGroupCountThatDoesNotMatch) {
  const MatrixF w = test::random_weights(3, 37, 14);
  const QuantizedMatrix q = gptq_quantize(w, test::realistic_hessian(37, 15), QuantSpec::parse("4b-g16"), GptqOptions{});
  PackedLinear packed = pack_linear("layers.0.mlp.down_proj", q, nullptr, LowRankMethod::None);
  ASSERT_EQ(packed.parts[0].num_groups, 3);
  // Two groups of 16 would leave columns 32..36 without parameters.
  packed.parts[0].num_groups = 2;
  packed.parts[0].scales.resize(3 * 2);
  try {
    unpack_codes(packed);
    FAIL() << "2 groups of 16 for 37 columns accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layers.0.mlp.down_proj"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("expected ceil(37 / 16) = 3"), std::string::npos) << e.what();
  }
}

TEST(Pack, FactorsRoundTripInBothFormats) {
  const MatrixF w = test::random_weights(12, 64, 3);
  const QuantizedMatrix q = gptq_quantize(w, test::realistic_hessian(64, 4), QuantSpec::parse("3b-g32"), GptqOptions{});
  const MatrixF a = test::random_weights(12, 5, 5, 0.3f), b = test::random_weights(5, 64, 6, 0.01f);
  for (FactorFormat format : {FactorFormat::Fp16, FactorFormat::Int8}) {
    const LowRankFactors f = round_factors(a, b, format);
    const PackedLinear packed = pack_linear("l", q, &f, LowRankMethod::Whiten);
    EXPECT_EQ(packed.rank, 5);
    EXPECT_EQ(packed.lowrank, LowRankMethod::Whiten);
    const LowRankFactors back = unpack_factors(packed);
    EXPECT_EQ(back.a, f.a);
    EXPECT_EQ(back.b, f.b);
    const MatrixF expected = dequantize(q) + f.a * f.b;
    EXPECT_LT((dequantize(packed, true) - expected).cwiseAbs().maxCoeff(), 1e-7f);
    EXPECT_EQ(packed.bpw, bits_per_weight(q.spec, 12, 64, 5, format));
    // Rounding is idempotent: stored factors re-round to themselves.
    const LowRankFactors again = round_factors(f.a, f.b, format);
    EXPECT_EQ(again.a, f.a);
    EXPECT_EQ(again.b, f.b);
  }
}

TEST(Pack, DequantLinearComputesTheLayer) {
  const auto backend = make_backend("cpu");
  const MatrixF w = test::random_weights(10, 64, 7);
  const QuantizedMatrix q = gptq_quantize(w, test::realistic_hessian(64, 8), QuantSpec::parse("4b-g32"), GptqOptions{});
  const LowRankFactors f = round_factors(test::random_weights(10, 3, 9, 0.1f), test::random_weights(3, 64, 10, 0.1f),
                                         FactorFormat::Fp16);
  PackedLinear packed = pack_linear("l", q, &f, LowRankMethod::Svd);
  packed.bias = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  const MatrixF x = test::random_weights(6, 64, 11, 1.0f);
  MatrixF y;
  backend->dequant_linear(x, packed, y);
  MatrixF expected = x * (dequantize(q) + f.a * f.b).transpose();
  for (int r = 0; r < 6; ++r)
    for (int c = 0; c < 10; ++c) expected(r, c) += float(c + 1);
  EXPECT_LT((y - expected).cwiseAbs().maxCoeff(), 1e-4f);
}

}  // namespace
}  // namespace amlq
