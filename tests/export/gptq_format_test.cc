// The exported GPTQ tensors, decoded by a decoder written here from the format
// description (docs/EXPORT.md, AutoGPTQ's packing), not from the exporter's
// code, must give exactly amlq's own dequantized weights.
#include <gtest/gtest.h>

#include <cstring>
#include <tuple>

#include "backend/backend.h"
#include "core/error.h"
#include "core/fp16.h"
#include "export/gptq_linear.h"
#include "quant/pack.h"
#include "quant/quantizer.h"
#include "tests/quant/quant_test_util.h"

namespace amlq {
namespace {

// ---- the test's own decoder -------------------------------------------------

// qweight is [words, out] row-major; column o holds input codes.
// 2/4/8 bits (from the format description): 32/b codes per int32, input i in
// word i / (32/b) at bits (i % (32/b)) * b.
uint32_t code_248(const std::vector<uint32_t>& qweight, int out, int i, int o, int b) {
  const int per_word = 32 / b;
  return (qweight[static_cast<size_t>(i / per_word) * out + o] >> ((i % per_word) * b)) & ((1u << b) - 1u);
}

// 3 bits (AutoGPTQ's pack loop): every 32 inputs take 3 words; inputs 0-9 at bits
// 3k of word 0, input 10 in bits 30-31 of word 0 (low two bits) and bit 0 of word
// 1, inputs 11-20 at bits 3(k-11)+1 of word 1, input 21 in bit 31 of word 1 (low
// bit) and bits 0-1 of word 2, inputs 22-31 at bits 3(k-22)+2 of word 2.
uint32_t code_3(const std::vector<uint32_t>& qweight, int out, int i, int o) {
  const int block = i / 32, k = i % 32;
  auto word = [&](int w) { return qweight[static_cast<size_t>(block * 3 + w) * out + o]; };
  if (k < 10) return (word(0) >> (3 * k)) & 7u;
  if (k == 10) return ((word(0) >> 30) & 3u) | ((word(1) & 1u) << 2);
  if (k < 21) return (word(1) >> (3 * (k - 11) + 1)) & 7u;
  if (k == 21) return ((word(1) >> 31) & 1u) | ((word(2) & 3u) << 1);
  return (word(2) >> (3 * (k - 22) + 2)) & 7u;
}

// Any width and shape: bits [i*b, i*b + b) of a stream of 32-bit words read
// through a 64-bit window (the layout the two rules above are instances of).
// The stream's words are words[first + w * stride].
uint32_t code_stream(const std::vector<uint32_t>& words, int64_t first, int64_t stride, int64_t count, int64_t i,
                     int b) {
  const int64_t bit = i * b, w = bit / 32;
  uint64_t window = words[static_cast<size_t>(first + w * stride)];
  if (w + 1 < count) window |= static_cast<uint64_t>(words[static_cast<size_t>(first + (w + 1) * stride)]) << 32;
  return static_cast<uint32_t>((window >> (bit % 32)) & ((1u << b) - 1u));
}

// W[o, i] = scales[g_idx[i], o] * (q[i, o] - (qzeros field + 1)).
MatrixF decode(const GptqLinear& g) {
  const int b = g.bits, in = g.in, out = g.out;
  const int64_t weight_words = (int64_t{in} * b + 31) / 32, zero_words = (int64_t{out} * b + 31) / 32;
  const bool aligned = in % 32 == 0;
  MatrixF w(out, in);
  for (int o = 0; o < out; ++o)
    for (int i = 0; i < in; ++i) {
      uint32_t q;
      if (aligned && b == 3)
        q = code_3(g.qweight, out, i, o);
      else if (aligned)
        q = code_248(g.qweight, out, i, o, b);
      else
        q = code_stream(g.qweight, o, out, weight_words, i, b);
      const int32_t grp = g.g_idx[static_cast<size_t>(i)];
      const uint32_t z = code_stream(g.qzeros, grp * zero_words, 1, zero_words, o, b) + 1;
      const float s = fp16_to_float(g.scales[static_cast<size_t>(grp) * out + o]);
      w(o, i) = s * static_cast<float>(static_cast<int>(q) - static_cast<int>(z));
    }
  return w;
}

// ---- layers to export --------------------------------------------------------

PackedLinear quantized_layer(int rows, int cols, const std::string& spec_label, uint32_t seed) {
  auto backend = make_backend("cpu");
  const MatrixF w = test::random_weights(rows, cols, seed);
  const MatrixD h = test::realistic_hessian(cols, seed + 1);
  const QuantSpec spec = QuantSpec::parse(spec_label);
  const QuantizedMatrix q = backend->quantize(w, h, spec, GptqOptions{});
  PackedLinear l = pack_linear("model.layers.0.mlp.down_proj", q, nullptr, LowRankMethod::None);
  l.bias.assign(static_cast<size_t>(rows), 0.25f);
  return l;
}

using Case = std::tuple<int, int, int, std::string>;  // rows, cols, bits, "g64" / "row" + suffix

class GptqDecode : public ::testing::TestWithParam<Case> {};

TEST_P(GptqDecode, TestDecoderReproducesAmlqWeightsExactly) {
  const auto& [rows, cols, bits, rest] = GetParam();
  const std::string label = std::to_string(bits) + "b-" + rest;
  const PackedLinear layer = quantized_layer(rows, cols, label, static_cast<uint32_t>(rows * 131 + cols * 7 + bits));
  const GptqConversion c = to_gptq(layer);
  ASSERT_EQ(c.problem, GptqProblem::None) << c.reason;
  const GptqLinear& g = c.linear;
  ASSERT_EQ(g.qweight.size(), static_cast<size_t>((cols * bits + 31) / 32) * rows);
  ASSERT_EQ(g.scales.size(), static_cast<size_t>(g.groups()) * rows);
  // act-order shows in g_idx unless the groups follow the original columns (static) or one group spans the row.
  EXPECT_EQ(g.desc_act, layer.spec.act_order && !layer.spec.static_groups && g.groups() > 1) << label;
  EXPECT_EQ(g.bias, layer.bias);

  const MatrixF expected = dequantize(layer, false);
  const MatrixF got = decode(g);
  EXPECT_EQ((got - expected).cwiseAbs().maxCoeff(), 0.0f) << label << " " << rows << "x" << cols;

  // And back: amlq's reader gives the same weights.
  const PackedLinear back = from_gptq(g, gptq::kZeroOffsetV1, "test");
  EXPECT_EQ((dequantize(back, false) - expected).cwiseAbs().maxCoeff(), 0.0f) << label;
  EXPECT_EQ(back.bias, layer.bias);
}

INSTANTIATE_TEST_SUITE_P(
    BitsOrderShapes, GptqDecode,
    ::testing::Values(
        // every width, act-order (the default) and not, aligned shapes
        Case{64, 128, 2, "g32"}, Case{64, 128, 3, "g32"}, Case{64, 128, 4, "g32"}, Case{64, 128, 8, "g32"},
        Case{64, 128, 2, "g32-noact"}, Case{64, 128, 3, "g32-noact"}, Case{64, 128, 4, "g64-noact"},
        Case{64, 128, 8, "g64-noact"},
        // static groups: act-order processing, plain g_idx
        Case{32, 96, 3, "g32-static"}, Case{32, 96, 4, "g32-static"},
        // whole-row groups and symmetric
        Case{32, 64, 4, "row"}, Case{32, 64, 3, "g32-sym"}, Case{32, 64, 8, "row-sym-noact"},
        // odd shapes: out and in not multiples of 32, short last groups (stories260K's 172)
        Case{172, 64, 3, "g64"}, Case{64, 172, 3, "g64"}, Case{64, 172, 4, "g64"}, Case{64, 172, 2, "g32"},
        Case{64, 172, 8, "g32-noact"}, Case{40, 96, 3, "g32"}, Case{33, 70, 4, "row"}, Case{33, 70, 3, "g32"}));

// ---- zero points and what the format cannot express ---------------------------

// A hand-built 3-bit layer, one row, two groups of 4 columns, given zeros and codes.
PackedLinear tiny_layer(std::vector<uint8_t> codes, std::vector<uint8_t> zeros) {
  QuantizedMatrix q;
  q.rows = 1;
  q.cols = 8;
  q.spec = QuantSpec::parse("3b-g4-noact");
  q.codes = std::move(codes);
  QuantizedMatrix::Part part;
  part.col_begin = 0;
  part.col_end = 8;
  part.bits = 3;
  part.group = 4;
  part.num_groups = 2;
  part.scales = {float_to_fp16(0.5f), float_to_fp16(0.25f)};
  part.zeros = std::move(zeros);
  q.parts.push_back(std::move(part));
  return pack_linear("model.layers.0.self_attn.o_proj", q, nullptr, LowRankMethod::None);
}

TEST(GptqZeroPoint, ZeroPointZeroWithRoomIsShiftedExactly) {
  const PackedLinear layer = tiny_layer({0, 1, 2, 6, 3, 4, 7, 0}, {0, 3});
  const GptqConversion c = to_gptq(layer);
  ASSERT_EQ(c.problem, GptqProblem::None) << c.reason;
  EXPECT_EQ(c.shifted_groups, 1);
  EXPECT_EQ((decode(c.linear) - dequantize(layer, false)).cwiseAbs().maxCoeff(), 0.0f);
}

TEST(GptqZeroPoint, ZeroPointZeroWithTheFullCodeRangeIsInexpressible) {
  const PackedLinear layer = tiny_layer({0, 1, 2, 7, 3, 4, 7, 0}, {0, 3});
  const GptqConversion c = to_gptq(layer);
  EXPECT_EQ(c.problem, GptqProblem::ZeroPoint);
  EXPECT_NE(c.reason.find("zero point 0"), std::string::npos) << c.reason;
  EXPECT_NE(c.reason.find("row 0, group 0"), std::string::npos) << c.reason;
}

TEST(GptqZeroPoint, AFieldOfAllOnesUnderZeroMinusOneIsRefusedByTheReader) {
  GptqLinear g = to_gptq(tiny_layer({0, 1, 2, 3, 3, 4, 7, 0}, {1, 3})).linear;
  g.qzeros[0] = 7u;  // group 0, row 0: zero - 1 = 7 -> zero 8 does not fit in 3 bits
  try {
    from_gptq(g, gptq::kZeroOffsetV1, "ckpt");
    FAIL() << "accepted a zero point of 8 in a 3-bit layer";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input);
    EXPECT_NE(std::string(e.what()).find("ckpt: model.layers.0.self_attn.o_proj.qzeros"), std::string::npos) << e.what();
  }
  // gptq_v2 stores the zero itself: 7 is a valid zero point there.
  EXPECT_NO_THROW(from_gptq(g, gptq::kZeroOffsetV2, "ckpt"));
}

TEST(GptqExpressible, MixedPartsAndMissingWidthsAreReportedWithAReason) {
  const GptqConversion mixed = to_gptq(quantized_layer(32, 128, "25%4b-g32+75%3b-g32", 7));
  EXPECT_EQ(mixed.problem, GptqProblem::Parts);
  EXPECT_NE(mixed.reason.find("2 parts"), std::string::npos) << mixed.reason;
  const GptqConversion five = to_gptq(quantized_layer(32, 128, "5b-g32", 8));
  EXPECT_EQ(five.problem, GptqProblem::Bits);
  EXPECT_NE(five.reason.find("5-bit"), std::string::npos) << five.reason;
}

TEST(GptqReader, GroupIndexThatIsNotConsecutiveRunsIsRefusedNamingTheLayer) {
  GptqLinear g = to_gptq(quantized_layer(32, 64, "4b-g32-noact", 9)).linear;
  g.g_idx[0] = 1;  // group 1 now has 33 columns
  try {
    from_gptq(g, gptq::kZeroOffsetV1, "peer-ckpt");
    FAIL() << "accepted an unrepresentable g_idx";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("peer-ckpt: model.layers.0.mlp.down_proj.g_idx"), std::string::npos)
        << e.what();
  }
}

TEST(GptqReader, ArbitraryActOrderGroupIndexReadsBackToTheSameWeights) {
  // A peer's act-order layer: g_idx = perm^-1[i] / G for any permutation.
  const PackedLinear layer = quantized_layer(48, 96, "4b-g32", 10);
  ASSERT_FALSE(layer.perm.empty());
  const GptqLinear g = to_gptq(layer).linear;
  EXPECT_TRUE(g.desc_act);
  const PackedLinear back = from_gptq(g, gptq::kZeroOffsetV1, "test");
  EXPECT_TRUE(back.spec.act_order);
  EXPECT_EQ((dequantize(back, false) - dequantize(layer, false)).cwiseAbs().maxCoeff(), 0.0f);
}

}  // namespace
}  // namespace amlq
