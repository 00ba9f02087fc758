// The packed-weight product on the device: the fused GEMV (1..16 tokens) and the
// dequantize + SGEMM path (larger batches, static groups) against the CPU oracle
// and against a direct decode of the packed words (independent of both).
// Tolerance: fp32 sums in another order over n <= 1000 terms: 2e-5 relative to
// the output's max magnitude. Skips without a CUDA device.
#include <gtest/gtest.h>

#include <random>

#include "backend/backend.h"
#include "gpu_test_util.h"
#include "quant/pack.h"
#include "quant/packed_format.h"

namespace amlq {
namespace {

using test::random_matrix;
using test::relative_max_error;

// A packed layer with random codes/scales/zeros for `spec` (no solver involved).
PackedLinear random_packed(int rows, int cols, const QuantSpec& spec, int rank, FactorFormat format, bool bias,
                           uint32_t seed) {
  std::mt19937 rng(seed);
  QuantizedMatrix q;
  q.rows = rows;
  q.cols = cols;
  q.spec = spec;
  if (spec.act_order) {
    q.perm.resize(cols);
    for (int i = 0; i < cols; ++i) q.perm[i] = i;
    std::shuffle(q.perm.begin(), q.perm.end(), rng);
  }
  q.codes.resize(static_cast<size_t>(rows) * cols);
  const auto ranges = spec.part_columns(cols);
  std::uniform_real_distribution<float> scale(0.001f, 0.05f);
  for (size_t p = 0; p < ranges.size(); ++p) {
    QuantizedMatrix::Part part;
    part.col_begin = ranges[p].first;
    part.col_end = ranges[p].second;
    part.bits = spec.parts[p].bits;
    const int width = part.col_end - part.col_begin;
    const int span = spec.static_groups ? cols : width;
    part.group = spec.parts[p].group > 0 ? spec.parts[p].group : span;
    part.num_groups = (span + part.group - 1) / part.group;
    const int maxq = (1 << part.bits) - 1;
    std::uniform_int_distribution<int> code(0, maxq);
    for (int i = 0; i < rows; ++i)
      for (int j = part.col_begin; j < part.col_end; ++j) q.codes[static_cast<size_t>(i) * cols + j] = code(rng);
    for (int i = 0; i < rows * part.num_groups; ++i) {
      part.scales.push_back(float_to_fp16(scale(rng)));
      part.zeros.push_back(static_cast<uint8_t>(code(rng)));
    }
    q.parts.push_back(std::move(part));
  }
  LowRankFactors f;
  f.format = format;
  if (rank > 0) {
    f.a = random_matrix(rows, rank, seed + 1, 0.01f);
    f.b = random_matrix(rank, cols, seed + 2, 0.01f);
  }
  PackedLinear layer = pack_linear("test.layer", q, rank > 0 ? &f : nullptr, LowRankMethod::Svd);
  if (bias) {
    const VectorF b = VectorF::Random(rows);
    layer.bias.assign(b.data(), b.data() + rows);
  }
  return layer;
}

// y = x W_hat^T + (x B^T) A^T + bias straight from the packed words, in double.
MatrixD direct_reference(const MatrixF& x, const PackedLinear& layer) {
  MatrixD w = MatrixD::Zero(layer.rows, layer.cols);
  for (const PackedPart& part : layer.parts) {
    const int width = part.col_end - part.col_begin;
    const int64_t wpr = packed::words_per_row(width, part.bits);
    const int64_t zpr = packed::words_per_row(part.num_groups, part.bits);
    for (int r = 0; r < layer.rows; ++r) {
      for (int c = 0; c < width; ++c) {
        const int j = part.col_begin + c;
        const int original = layer.perm.empty() ? j : layer.perm[j];
        const int g = layer.spec.static_groups ? original / part.group : c / part.group;
        const double s = fp16_to_float(part.scales[static_cast<size_t>(r) * part.num_groups + g]);
        const double z = packed::get_code(part.zeros.data() + r * zpr, g, part.bits);
        w(r, original) = s * (packed::get_code(part.codes.data() + r * wpr, c, part.bits) - z);
      }
    }
  }
  if (layer.rank > 0) {
    const LowRankFactors f = unpack_factors(layer);
    w += f.a.cast<double>() * f.b.cast<double>();
  }
  MatrixD y = x.cast<double>() * w.transpose();
  for (size_t r = 0; r < layer.bias.size(); ++r) y.col(r).array() += layer.bias[r];
  return y;
}

class DequantLinear : public ::testing::Test {
 protected:
  void SetUp() override {
    AMLQ_SKIP_WITHOUT_CUDA_DEVICE();
    gpu_ = make_backend("cuda");
    cpu_ = make_backend("cpu");
  }
  void check(const PackedLinear& layer, int tokens, uint32_t seed) {
    const MatrixF x = random_matrix(tokens, layer.cols, seed);
    MatrixF yg, yc;
    gpu_->dequant_linear(x, layer, yg);
    cpu_->dequant_linear(x, layer, yc);
    ASSERT_EQ(yg.rows(), tokens);
    ASSERT_EQ(yg.cols(), layer.rows);
    const std::string what = layer.spec.label() + " tokens=" + std::to_string(tokens);
    EXPECT_LT(relative_max_error(yg, yc), 2e-5) << what;
    EXPECT_LT(relative_max_error(yg.cast<double>(), direct_reference(x, layer)), 2e-5) << what;
  }
  std::unique_ptr<Backend> gpu_, cpu_;
};

TEST_F(DequantLinear, FusedEveryBitWidthAndBatch) {
  for (int bits : {2, 3, 4, 5, 6, 7, 8}) {
    const QuantSpec spec = QuantSpec::parse(std::to_string(bits) + "b-g32");
    const PackedLinear layer = random_packed(45, 1088, spec, 0, FactorFormat::Fp16, false, 100 + bits);
    for (int tokens : {1, 2, 3, 5, 8, 11, 16}) check(layer, tokens, 1000 * bits + tokens);
  }
}

TEST_F(DequantLinear, FusedMixedPartsLowRankAndBias) {
  // Awkward widths: parts whose word streams end mid-tile, whole-row groups.
  const PackedLinear a = random_packed(37, 1000, QuantSpec::parse("20%8b-g40+80%3b-g40"), 7, FactorFormat::Fp16, true, 1);
  const PackedLinear b = random_packed(29, 333, QuantSpec::parse("3b-row"), 33, FactorFormat::Int8, true, 2);
  const PackedLinear c = random_packed(50, 256, QuantSpec::parse("4b-g128-noact"), 4, FactorFormat::Fp16, false, 3);
  for (int tokens : {1, 4, 16}) {
    check(a, tokens, 10 + tokens);
    check(b, tokens, 20 + tokens);
    check(c, tokens, 30 + tokens);
  }
}

TEST_F(DequantLinear, GeneralPathForLargeBatchesAndStaticGroups) {
  const PackedLinear a = random_packed(37, 1000, QuantSpec::parse("20%8b-g40+80%3b-g40"), 7, FactorFormat::Int8, true, 4);
  check(a, 17, 5);
  check(a, 64, 6);
  const PackedLinear st = random_packed(41, 320, QuantSpec::parse("4b-g64-static"), 5, FactorFormat::Fp16, true, 7);
  check(st, 1, 8);  // static groups always take the general path
  check(st, 33, 9);
}

}  // namespace
}  // namespace amlq
