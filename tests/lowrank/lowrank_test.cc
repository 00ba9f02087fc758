#include <gtest/gtest.h>

#include <Eigen/SVD>

#include "backend/backend.h"
#include "core/fp16.h"
#include "lowrank/decompose.h"
#include "quant/error.h"
#include "quant/gptq.h"
#include "quant/quantizer.h"
#include "tests/quant/quant_test_util.h"

namespace amlq {
namespace {

struct Problem {
  MatrixF x, w, w_hat;
  MatrixD h;
  VectorD act_scale;
};

Problem make_problem(int m, int n, int tokens, uint32_t seed, const char* spec = "3b-g32") {
  Problem p;
  p.x = test::realistic_inputs(tokens, n, seed);
  p.h = test::hessian_of(p.x);
  p.w = test::random_weights(m, n, seed + 1);
  p.w_hat = dequantize(gptq_quantize(p.w, p.h, QuantSpec::parse(spec), GptqOptions{}));
  p.act_scale = p.x.cast<double>().cwiseAbs().colwise().mean().transpose();
  return p;
}

// ||(E - A_k B_k) X^T||^2 / ||W X^T||^2 with explicit activations.
double explicit_eps(const Problem& p, const MatrixD& a, const MatrixD& b) {
  const MatrixD xt = p.x.cast<double>().transpose();
  const MatrixD r = (p.w - p.w_hat).cast<double>() - a * b;
  return (r * xt).squaredNorm() / (p.w.cast<double>() * xt).squaredNorm();
}

const LowRankMethod kMethods[] = {LowRankMethod::Svd, LowRankMethod::L2qer, LowRankMethod::Whiten};

TEST(LowRank, EpsAtEveryRankMatchesExplicitActivations) {
  const auto backend = make_backend("cpu");
  const Problem p = make_problem(24, 64, 400, 1);
  for (LowRankMethod method : kMethods) {
    const auto d = decompose_error(*backend, p.w, p.w_hat, p.h, p.act_scale, method, 16);
    ASSERT_EQ(d.max_rank(), 16);
    for (int k = 0; k <= 16; ++k) {
      const double want = explicit_eps(p, d.a.leftCols(k), d.b.topRows(k));
      EXPECT_NEAR(d.eps_at(k), want, 1e-8 * want) << lowrank_method_name(method) << " k=" << k;
    }
  }
}

TEST(LowRank, WhitenedIsTheBruteForceOptimum) {
  const auto backend = make_backend("cpu");
  const Problem p = make_problem(12, 32, 200, 2);
  LowRankOptions opt;
  opt.damp = 1e-12;  // the optimum of the undamped problem
  const auto d = decompose_error(*backend, p.w, p.w_hat, p.h, p.act_scale, LowRankMethod::Whiten, 12, opt);
  // Best rank-k approximation of E X^T directly: the tail of its singular values.
  const MatrixD ext = (p.w - p.w_hat).cast<double>() * p.x.cast<double>().transpose();
  const Eigen::JacobiSVD<Eigen::MatrixXd> svd(ext);
  const double wx = (p.w.cast<double>() * p.x.cast<double>().transpose()).squaredNorm();
  for (int k = 0; k <= 12; ++k) {
    const double tail = svd.singularValues().tail(svd.singularValues().size() - k).squaredNorm() / wx;
    EXPECT_NEAR(d.eps_at(k), tail, 1e-7 * d.eps_at(0)) << "k=" << k;
  }
}

TEST(LowRank, WhitenedNeverWorseThanL2qerOrSvd) {
  const auto backend = make_backend("cpu");
  for (uint32_t seed = 0; seed < 20; ++seed) {
    const Problem p = make_problem(16, 48, 120, 1000 + seed, seed % 2 ? "2b-g16" : "3b-row");
    LowRankOptions opt;
    opt.damp = 1e-9;
    const auto wh = decompose_error(*backend, p.w, p.w_hat, p.h, p.act_scale, LowRankMethod::Whiten, 8, opt);
    const auto l2 = decompose_error(*backend, p.w, p.w_hat, p.h, p.act_scale, LowRankMethod::L2qer, 8);
    const auto sv = decompose_error(*backend, p.w, p.w_hat, p.h, p.act_scale, LowRankMethod::Svd, 8);
    for (int k = 1; k <= 8; ++k) {
      EXPECT_LE(wh.eps_at(k), l2.eps_at(k) * (1 + 1e-9)) << "seed " << seed << " k " << k;
      EXPECT_LE(wh.eps_at(k), sv.eps_at(k) * (1 + 1e-9)) << "seed " << seed << " k " << k;
      EXPECT_LE(wh.eps_at(k), wh.eps_at(k - 1) * (1 + 1e-12));
    }
  }
}

TEST(LowRank, DefaultDampStillHelpsAtEveryRank) {
  const auto backend = make_backend("cpu");
  const Problem p = make_problem(32, 64, 256, 5);
  const auto d = decompose_error(*backend, p.w, p.w_hat, p.h, p.act_scale, LowRankMethod::Whiten, 32);
  EXPECT_DOUBLE_EQ(d.eps_at(0), normalized_error(p.w, p.w_hat, p.h));
  for (int k = 1; k <= 32; ++k) EXPECT_LT(d.eps_at(k), d.eps_at(k - 1));
}

TEST(LowRank, StoredFactorsErrorIsCloseToUnrounded) {
  const auto backend = make_backend("cpu");
  const Problem p = make_problem(24, 64, 300, 6);
  for (LowRankMethod method : kMethods) {
    const auto d = decompose_error(*backend, p.w, p.w_hat, p.h, p.act_scale, method, 8);
    for (FactorFormat format : {FactorFormat::Fp16, FactorFormat::Int8}) {
      const LowRankFactors f = d.factors(8, format);
      ASSERT_EQ(f.rank(), 8);
      if (format == FactorFormat::Fp16) {
        for (Eigen::Index i = 0; i < f.a.size(); ++i) EXPECT_EQ(f.a.data()[i], round_to_fp16(f.a.data()[i]));
      }
      const double stored = lowrank_eps(p.w, p.w_hat, p.h, f);
      // The rounding perturbs the correction, not the residual: a small fraction of eps(0).
      EXPECT_NEAR(stored, d.eps_at(8), (format == FactorFormat::Fp16 ? 1e-4 : 2e-2) * d.eps_at(0))
          << lowrank_method_name(method) << " " << factor_format_name(format);
    }
  }
}

TEST(LowRank, RankAboveMinDimIsClampedAndExact) {
  const auto backend = make_backend("cpu");
  const Problem p = make_problem(6, 32, 100, 7);
  for (LowRankMethod method : kMethods) {
    const auto d = decompose_error(*backend, p.w, p.w_hat, p.h, p.act_scale, method, 100);
    EXPECT_EQ(d.max_rank(), 6);
    EXPECT_NEAR(d.eps_at(6), 0.0, 1e-10);
    EXPECT_EQ(d.eps_at(50), d.eps_at(6));
    EXPECT_EQ(d.factors(50, FactorFormat::Fp16).rank(), 6);
  }
}

TEST(LowRank, DegenerateInputsGiveNoNan) {
  const auto backend = make_backend("cpu");
  const Problem p = make_problem(8, 32, 100, 8);
  VectorD zero_scale = p.act_scale;
  zero_scale.head(5).setZero();
  MatrixD dead_h = p.h;
  dead_h.row(3).setZero();
  dead_h.col(3).setZero();
  for (LowRankMethod method : kMethods) {
    // No error at all.
    auto d = decompose_error(*backend, p.w, p.w, p.h, p.act_scale, method, 4);
    for (int k = 0; k <= 4; ++k) EXPECT_EQ(d.eps_at(k), 0.0);
    EXPECT_TRUE(d.factors(4, FactorFormat::Int8).a.allFinite());
    // Zero weights and zero Hessian: nothing to normalize by.
    d = decompose_error(*backend, MatrixF::Zero(8, 32), MatrixF::Zero(8, 32), MatrixD::Zero(32, 32),
                        VectorD::Zero(32), method, 4);
    for (int k = 0; k <= 4; ++k) EXPECT_EQ(d.eps_at(k), 0.0);
    d = decompose_error(*backend, p.w, p.w_hat, dead_h, zero_scale, method, 4);
    for (int k = 0; k <= 4; ++k) EXPECT_TRUE(std::isfinite(d.eps_at(k)));
    EXPECT_TRUE(d.factors(4, FactorFormat::Fp16).b.allFinite());
  }
}

TEST(CpuSvd, MatchesJacobiOnTallAndWide) {
  const auto backend = make_backend("cpu");
  for (auto [rows, cols] : {std::pair{40, 25}, std::pair{25, 40}}) {
    const MatrixD m = test::random_weights(rows, cols, 3, 1.0f).cast<double>();
    const SvdResult r = backend->svd(m, 10);
    const Eigen::JacobiSVD<Eigen::MatrixXd> ref(m, Eigen::ComputeThinU | Eigen::ComputeThinV);
    EXPECT_LT((r.s - ref.singularValues().head(10)).norm(), 1e-10);
    EXPECT_NEAR(r.frobenius_sq, m.squaredNorm(), 1e-10);
    const Eigen::MatrixXd approx = r.u * r.s.asDiagonal() * r.v.transpose();
    const Eigen::MatrixXd want =
        ref.matrixU().leftCols(10) * ref.singularValues().head(10).asDiagonal() * ref.matrixV().leftCols(10).transpose();
    EXPECT_LT((approx - want).norm(), 1e-9);
    EXPECT_LT((r.u.transpose() * r.u - Eigen::MatrixXd::Identity(10, 10)).norm(), 1e-9);
  }
  EXPECT_EQ(backend->svd(MatrixD::Zero(5, 4), 3).s, VectorD::Zero(3));
}

}  // namespace
}  // namespace amlq
