// Parity of every CUDA backend op with the CPU oracle on fresh random inputs of
// awkward sizes. Runs only where a CUDA device exists (skips otherwise).
//
// Tolerances, by precision:
//  - Hessian: fp64 accumulation of exact fp32 products on both sides: 1e-12 relative.
//  - SVD: fp64 Gram eigendecomposition on both sides: singular values 1e-9
//    relative, rank-k reconstructions 1e-8 relative.
//  - linear / rms_norm / rope / swiglu / attention: fp32 with a different
//    summation order (cuBLAS SGEMM without TF32, warp reductions): 1e-5 relative
//    to the output's max magnitude (attention 2e-5: exp and online softmax).
//  - GPTQ: fp32 error feedback; the SGEMM's summation order differs from Eigen's,
//    so a code on a rounding boundary may flip and the flip propagates through
//    later columns. Bounds: >= 97% equal codes, >= 97% equal scales, output error
//    within 3% relative. RTN and the permutation have no such freedom: exact.
#include <gtest/gtest.h>

#include <cmath>

#include "backend/backend.h"
#include "gpu_test_util.h"
#include "quant/quantizer.h"

namespace amlq {
namespace {

using test::random_hessian;
using test::random_matrix;
using test::relative_max_error;

class CudaParity : public ::testing::Test {
 protected:
  void SetUp() override {
    AMLQ_SKIP_WITHOUT_CUDA_DEVICE();
    gpu_ = make_backend("cuda");
    cpu_ = make_backend("cpu");
  }
  std::unique_ptr<Backend> gpu_, cpu_;
};

TEST_F(CudaParity, HessianAccumulation) {
  const int n = 53;
  MatrixD h0 = random_hessian(n, 80, 1);
  VectorD s0 = VectorD::Random(n).cwiseAbs();
  MatrixD h_gpu = h0, h_cpu = h0;
  VectorD s_gpu = s0, s_cpu = s0;
  for (int batch = 0; batch < 2; ++batch) {
    const MatrixF x = random_matrix(37 + 1000 * batch, n, 10 + batch);
    gpu_->accumulate_hessian(x, h_gpu, s_gpu);
    cpu_->accumulate_hessian(x, h_cpu, s_cpu);
  }
  EXPECT_LT(relative_max_error(h_gpu, h_cpu), 1e-12);
  EXPECT_LT(relative_max_error(s_gpu, s_cpu), 1e-12);
  EXPECT_LT((h_gpu - h_gpu.transpose()).cwiseAbs().maxCoeff(), 1e-12 * h_gpu.cwiseAbs().maxCoeff());
  // An empty accumulator starts at zero.
  MatrixD h_new;
  VectorD s_new;
  gpu_->accumulate_hessian(random_matrix(5, 7, 3), h_new, s_new);
  EXPECT_EQ(h_new.rows(), 7);
  EXPECT_EQ(s_new.size(), 7);
}

struct QuantCase {
  std::string label;
  bool feedback;
};

void expect_quant_parity(const QuantizedMatrix& g, const QuantizedMatrix& c, bool exact, const std::string& what) {
  ASSERT_EQ(g.rows, c.rows) << what;
  ASSERT_EQ(g.cols, c.cols) << what;
  EXPECT_EQ(g.perm, c.perm) << what;
  EXPECT_EQ(g.dead_columns, c.dead_columns) << what;
  EXPECT_EQ(g.damp_escalations, c.damp_escalations) << what;
  EXPECT_DOUBLE_EQ(g.damp_used, c.damp_used) << what;
  ASSERT_EQ(g.parts.size(), c.parts.size()) << what;
  size_t scales = 0, equal_scales = 0;
  for (size_t p = 0; p < g.parts.size(); ++p) {
    const auto& gp = g.parts[p];
    const auto& cp = c.parts[p];
    EXPECT_EQ(gp.col_begin, cp.col_begin) << what;
    EXPECT_EQ(gp.col_end, cp.col_end) << what;
    EXPECT_EQ(gp.group, cp.group) << what;
    ASSERT_EQ(gp.num_groups, cp.num_groups) << what;
    ASSERT_EQ(gp.scales.size(), cp.scales.size()) << what;
    for (size_t i = 0; i < gp.scales.size(); ++i) {
      ++scales;
      equal_scales += gp.scales[i] == cp.scales[i] && gp.zeros[i] == cp.zeros[i];
    }
  }
  ASSERT_EQ(g.codes.size(), c.codes.size()) << what;
  size_t equal_codes = 0;
  for (size_t i = 0; i < g.codes.size(); ++i) equal_codes += g.codes[i] == c.codes[i];
  const double code_match = static_cast<double>(equal_codes) / g.codes.size();
  const double scale_match = static_cast<double>(equal_scales) / scales;
  if (exact) {
    EXPECT_EQ(code_match, 1.0) << what;
    EXPECT_EQ(scale_match, 1.0) << what;
  } else {
    EXPECT_GE(code_match, 0.97) << what;
    EXPECT_GE(scale_match, 0.97) << what;
    ASSERT_GT(c.output_error, 0) << what;
    EXPECT_NEAR(g.output_error / c.output_error, 1.0, 0.03) << what;
  }
}

TEST_F(CudaParity, QuantizeGptqAndRtn) {
  const int m = 67, n = 320;
  const MatrixF w = random_matrix(m, n, 21, 0.02f);
  MatrixD h = random_hessian(n, 2 * n, 22);
  // One dead input: its column must be zeroed and H_ii set to 1 on both sides.
  h.row(5).setZero();
  h.col(5).setZero();
  const std::vector<QuantCase> cases{
      {"4b-g64", true},          {"3b-row", true},       {"2b-g32-sym", true},     {"25%4b-g64+75%3b-g64", true},
      {"4b-g32-static", true},   {"8b-g64-noact", true}, {"4b-g64", false},        {"3b-row-noact", false},
      {"25%4b-g64+75%2b-g32", false}};
  for (const auto& c : cases) {
    const QuantSpec spec = QuantSpec::parse(c.label);
    GptqOptions options;
    options.error_feedback = c.feedback;
    const QuantizedMatrix g = gpu_->quantize(w, h, spec, options);
    const QuantizedMatrix r = cpu_->quantize(w, h, spec, options);
    expect_quant_parity(g, r, !c.feedback, c.label + (c.feedback ? " gptq" : " rtn"));
    EXPECT_EQ(g.dead_columns, 1);
  }
}

TEST_F(CudaParity, QuantizeSmallBlocksRankDeficientHessian) {
  const int m = 19, n = 96;
  const MatrixF w = random_matrix(m, n, 31, 0.05f);
  // Rank-deficient Hessian (fewer tokens than inputs): dampening must carry it.
  const MatrixD h = random_hessian(n, 40, 32);
  GptqOptions options;
  options.block_size = 48;
  const QuantSpec spec = QuantSpec::parse("4b-g32");
  expect_quant_parity(gpu_->quantize(w, h, spec, options), cpu_->quantize(w, h, spec, options), false, "block 48");
}

TEST_F(CudaParity, SvdTallAndWide) {
  for (auto [rows, cols] : {std::pair{45, 70}, std::pair{70, 45}, std::pair{33, 33}}) {
    const MatrixD m = random_matrix(rows, cols, rows * 100 + cols).cast<double>();
    const int rank = 10;
    const SvdResult g = gpu_->svd(m, rank);
    const SvdResult c = cpu_->svd(m, rank);
    ASSERT_EQ(g.s.size(), rank);
    EXPECT_LT(relative_max_error(g.s, c.s), 1e-9);
    EXPECT_NEAR(g.frobenius_sq, c.frobenius_sq, 1e-12 * c.frobenius_sq);
    const MatrixD rg = g.u * g.s.asDiagonal() * g.v.transpose();
    const MatrixD rc = c.u * c.s.asDiagonal() * c.v.transpose();
    EXPECT_LT(relative_max_error(rg, rc), 1e-8) << rows << "x" << cols;
    // Orthonormal columns on both sides.
    EXPECT_LT((g.u.transpose() * g.u - MatrixD::Identity(rank, rank)).cwiseAbs().maxCoeff(), 1e-9);
    EXPECT_LT((g.v.transpose() * g.v - MatrixD::Identity(rank, rank)).cwiseAbs().maxCoeff(), 1e-9);
  }
}

TEST_F(CudaParity, LinearWithAndWithoutBias) {
  const MatrixF x = random_matrix(13, 131, 41);
  const MatrixF w = random_matrix(77, 131, 42, 0.1f);
  const VectorF bias = VectorF::Random(77);
  for (const VectorF& b : {bias, VectorF()}) {
    MatrixF yg, yc;
    gpu_->linear(x, w, b, yg);
    cpu_->linear(x, w, b, yc);
    ASSERT_EQ(yg.rows(), 13);
    ASSERT_EQ(yg.cols(), 77);
    EXPECT_LT(relative_max_error(yg, yc), 1e-5);
  }
}

TEST_F(CudaParity, RmsNormRopeSwiglu) {
  const MatrixF x = random_matrix(11, 200, 51);
  const VectorF weight = VectorF::Random(200);
  MatrixF yg, yc;
  gpu_->rms_norm(x, weight, 1e-5f, yg);
  cpu_->rms_norm(x, weight, 1e-5f, yc);
  EXPECT_LT(relative_max_error(yg, yc), 1e-5);

  const int batch = 2, seqlen = 7, heads = 3, head_dim = 40;
  MatrixF cos(seqlen, head_dim / 2), sin(seqlen, head_dim / 2);
  for (int p = 0; p < seqlen; ++p)
    for (int i = 0; i < head_dim / 2; ++i) {
      const double freq = std::pow(10000.0, -2.0 * i / head_dim);
      cos(p, i) = static_cast<float>(std::cos(p * freq));
      sin(p, i) = static_cast<float>(std::sin(p * freq));
    }
  MatrixF qg = random_matrix(batch * seqlen, heads * head_dim, 52);
  MatrixF qc = qg;
  gpu_->rope(qg, batch, seqlen, heads, head_dim, cos, sin);
  cpu_->rope(qc, batch, seqlen, heads, head_dim, cos, sin);
  EXPECT_LT(relative_max_error(qg, qc), 1e-5);

  const MatrixF gate = random_matrix(9, 133, 53, 3.0f), up = random_matrix(9, 133, 54);
  gpu_->swiglu(gate, up, yg);
  cpu_->swiglu(gate, up, yc);
  EXPECT_LT(relative_max_error(yg, yc), 1e-5);
}

TEST_F(CudaParity, CausalGroupedQueryAttention) {
  const int batch = 2, seqlen = 9, heads = 4, kv_heads = 2;
  for (int head_dim : {40, 128}) {
    const int tokens = batch * seqlen;
    const MatrixF q = random_matrix(tokens, heads * head_dim, 61);
    const MatrixF k = random_matrix(tokens, kv_heads * head_dim, 62);
    const MatrixF v = random_matrix(tokens, kv_heads * head_dim, 63);
    MatrixF og, oc;
    gpu_->attention(q, k, v, batch, seqlen, heads, kv_heads, head_dim, og);
    cpu_->attention(q, k, v, batch, seqlen, heads, kv_heads, head_dim, oc);
    EXPECT_LT(relative_max_error(og, oc), 2e-5) << "head_dim " << head_dim;
  }
}

}  // namespace
}  // namespace amlq
