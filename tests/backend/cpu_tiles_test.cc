// The CPU backend splits its big operations into tiles whose sizes never depend
// on the thread count: results must be bit-identical for 1, 2 and 3 threads
// (this is what makes outputs identical across rank layouts that give ranks
// different numbers of threads).
#include <gtest/gtest.h>

#include <random>

#include "backend/backend.h"
#include "core/parallel.h"

namespace amlq {
namespace {

MatrixF random_matrix(Eigen::Index rows, Eigen::Index cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  MatrixF m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = dist(rng);
  return m;
}

class ThreadCounts : public ::testing::Test {
 protected:
  void TearDown() override { set_compute_threads(0); }
  std::unique_ptr<Backend> backend_ = make_backend("cpu");
};

TEST_F(ThreadCounts, LinearIsBitIdentical) {
  // 700 output features: several row tiles and a short last one.
  const MatrixF x = random_matrix(300, 257, 1);
  const MatrixF w = random_matrix(700, 257, 2);
  const MatrixF b = random_matrix(700, 1, 3);
  const VectorF bias = Eigen::Map<const VectorF>(b.data(), 700);
  std::vector<MatrixF> ys;
  for (int threads : {1, 2, 3}) {
    set_compute_threads(threads);
    MatrixF y;
    backend_->linear(x, w, bias, y);
    ys.push_back(y);
  }
  EXPECT_TRUE((ys[0].array() == ys[1].array()).all());
  EXPECT_TRUE((ys[0].array() == ys[2].array()).all());
  const MatrixF expected = (x * w.transpose()).rowwise() + bias.transpose();
  EXPECT_LT((ys[0] - expected).cwiseAbs().maxCoeff(), 1e-3);
}

TEST_F(ThreadCounts, HessianAccumulationIsBitIdenticalAndSymmetric) {
  const MatrixF x = random_matrix(512, 600, 4);
  std::vector<MatrixD> hs;
  for (int threads : {1, 2, 3}) {
    set_compute_threads(threads);
    MatrixD h;
    VectorD abs_sum;
    backend_->accumulate_hessian(x, h, abs_sum);
    backend_->accumulate_hessian(x.topRows(100), h, abs_sum);
    hs.push_back(h);
  }
  EXPECT_TRUE((hs[0].array() == hs[1].array()).all());
  EXPECT_TRUE((hs[0].array() == hs[2].array()).all());
  EXPECT_TRUE((hs[0].array() == hs[0].transpose().array()).all()) << "mirrored tiles must be exact transposes";
}

TEST_F(ThreadCounts, AttentionAndElementWiseOpsAreBitIdentical) {
  const int batch = 2, seqlen = 96, heads = 4, kv_heads = 2, head_dim = 16;
  const MatrixF q = random_matrix(batch * seqlen, heads * head_dim, 5);
  const MatrixF k = random_matrix(batch * seqlen, kv_heads * head_dim, 6);
  const MatrixF v = random_matrix(batch * seqlen, kv_heads * head_dim, 7);
  const MatrixF g = random_matrix(batch * seqlen, 300, 8);
  const MatrixF u = random_matrix(batch * seqlen, 300, 9);
  std::vector<MatrixF> outs;
  for (int threads : {1, 3}) {
    set_compute_threads(threads);
    MatrixF a, s, n;
    backend_->attention(q, k, v, batch, seqlen, heads, kv_heads, head_dim, a);
    backend_->swiglu(g, u, s);
    backend_->rms_norm(g, VectorF::Ones(300), 1e-5f, n);
    outs.push_back(a);
    outs.push_back(s);
    outs.push_back(n);
  }
  for (int i = 0; i < 3; ++i) EXPECT_TRUE((outs[static_cast<size_t>(i)].array() == outs[static_cast<size_t>(i + 3)].array()).all()) << i;
}

}  // namespace
}  // namespace amlq
