#include <gtest/gtest.h>

#include <Eigen/Eigenvalues>

#include "backend/backend.h"
#include "core/error.h"
#include "lowrank/decompose.h"
#include "lowrank/spec_errors.h"
#include "lowrank/top_eigen.h"
#include "quant/error.h"
#include "quant/gptq.h"
#include "quant/quantizer.h"
#include "tests/quant/quant_test_util.h"

namespace amlq {
namespace {

double rel(double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-300); }

// tr(E H E^T) the slow way, E as dequantize-and-subtract computes it.
double trace_form(const MatrixF& w, const QuantizedMatrix& q, const MatrixD& h) {
  return weighted_sq_norm(MatrixF(w - dequantize(q)), h);
}

struct Case {
  std::string what;
  MatrixF w;
  MatrixD h;
};

std::vector<Case> degenerate_cases() {
  std::vector<Case> cases;
  cases.push_back({"random", test::random_weights(48, 160, 1), test::realistic_hessian(160, 2)});
  {
    MatrixD h = test::realistic_hessian(128, 3);
    for (int dead : {0, 17, 90}) {
      h.row(dead).setZero();
      h.col(dead).setZero();
    }
    cases.push_back({"dead columns", test::random_weights(40, 128, 4), h});
  }
  // Fewer calibration tokens than inputs: H has rank 40 of 128.
  cases.push_back({"rank-deficient", test::random_weights(33, 128, 5),
                   test::hessian_of(test::realistic_inputs(40, 128, 6))});
  {
    // Needs the dampening raised once: -0.05 + 0.01 * mean(diag) < 0 < -0.05 + 0.1 * mean(diag).
    MatrixD h = test::realistic_hessian(96, 7);
    h /= h.diagonal().mean();
    h.row(95).setZero();
    h.col(95).setZero();
    h(95, 95) = -0.05;
    cases.push_back({"damp escalation", test::random_weights(20, 96, 8), h});
  }
  return cases;
}

TEST(SpecErrors, FreeErrorMatchesTheTraceFormOnDegenerateHessians) {
  for (const Case& c : degenerate_cases()) {
    for (const char* label : {"2b-g32", "3b-g64", "4b-g32-noact", "8b-g32", "25%4b-g32+75%3b-g64", "4b-g32-static"}) {
      const QuantSpec spec = QuantSpec::parse(label);
      const GptqFactor factor = gptq_factor(c.h, spec.act_order, GptqOptions{});
      if (c.what == "damp escalation") {
        EXPECT_EQ(factor.damp_escalations, 1);
      }
      for (bool rtn : {false, true}) {
        GptqOptions options;
        options.error_feedback = !rtn;
        QuantizedMatrix q;
        SpecErrorOptions request;  // exact, rank 0
        const SpecErrors e = measure_spec_errors(c.w, factor, spec, options, request, &q);
        // The same quantization as the one-shot path.
        EXPECT_EQ(q.codes, gptq_quantize(c.w, c.h, spec, options).codes) << c.what << " " << label;
        const double want = trace_form(c.w, q, c.h);
        EXPECT_LT(rel(e.error[0], want), 1e-9) << c.what << " " << label << (rtn ? " rtn" : "");
        if (!rtn && c.what != "damp escalation") {
          // The float32 by-product is close, not exact.
          request.mode = ErrorMode::Approximate;
          const SpecErrors a = measure_spec_errors(c.w, factor, spec, options, request);
          EXPECT_LT(rel(a.error[0], want), 1e-3) << c.what << " " << label;
        }
      }
    }
  }
}

TEST(SpecErrors, WeightNormFromTheFactor) {
  for (const Case& c : degenerate_cases()) {
    const GptqFactor factor = gptq_factor(c.h, true, GptqOptions{});
    EXPECT_LT(rel(weighted_sq_norm(c.w, factor), weighted_sq_norm(c.w, c.h)), 1e-10) << c.what;
  }
}

TEST(SpecErrors, WhitenedRanksMatchDecomposeError) {
  const auto backend = make_backend("cpu");
  const MatrixF w = test::random_weights(72, 200, 11);
  const MatrixD h = test::realistic_hessian(200, 12);
  for (const char* label : {"3b-g32", "2b-g64-noact"}) {
    const QuantSpec spec = QuantSpec::parse(label);
    const GptqFactor factor = gptq_factor(h, spec.act_order, GptqOptions{});
    SpecErrorOptions request;
    request.ranks = {0, 1, 8, 16, 32, 72};
    QuantizedMatrix q;
    const SpecErrors e = measure_spec_errors(w, factor, spec, GptqOptions{}, request, &q);
    const auto d = decompose_error(*backend, w, dequantize(q), h, VectorD(), LowRankMethod::Whiten, 72);
    // Relative to the rank-0 error: at full rank (72) both are rounding noise around 0.
    for (size_t r = 0; r < request.ranks.size(); ++r) {
      const double want = d.eps_at(request.ranks[r]) * d.weight_norm_h;
      EXPECT_LT(std::abs(e.error[r] - want), 1e-9 * e.error[0]) << label << " rank " << request.ranks[r];
    }
    // Approximate mode: a looser agreement.
    request.mode = ErrorMode::Approximate;
    const SpecErrors a = measure_spec_errors(w, factor, spec, GptqOptions{}, request);
    for (size_t r = 0; r < request.ranks.size(); ++r)
      EXPECT_LT(std::abs(a.error[r] - e.error[r]), 1e-3 * e.error[0]) << label;
  }
}

TEST(SpecErrors, PerRowSharesSumToTheTotals) {
  const MatrixF w = test::random_weights(50, 96, 21);
  const MatrixD h = test::realistic_hessian(96, 22);
  const GptqFactor factor = gptq_factor(h, true, GptqOptions{});
  SpecErrorOptions request;
  request.ranks = {0, 4, 16};
  request.per_row = true;
  const SpecErrors e = measure_spec_errors(w, factor, QuantSpec::parse("3b-g32"), GptqOptions{}, request);
  ASSERT_EQ(e.per_row.rows(), 50);
  ASSERT_EQ(e.per_row.cols(), 3);
  for (int r = 0; r < 3; ++r) EXPECT_LT(rel(e.per_row.col(r).sum(), e.error[static_cast<size_t>(r)]), 1e-10) << r;
  // Row i's rank-0 share is e_i H e_i^T.
  QuantizedMatrix q = gptq_quantize(w, factor, QuantSpec::parse("3b-g32"), GptqOptions{});
  const MatrixF err = w - dequantize(q);
  for (int i = 0; i < 50; i += 7)
    EXPECT_LT(rel(e.per_row(i, 0), weighted_sq_norm(MatrixF(err.row(i)), h)), 1e-9) << i;
}

TEST(SpecErrors, ZeroErrorAndAllDeadAreZero) {
  // All inputs dead: nothing reaches the output.
  const MatrixF w = test::random_weights(8, 64, 3);
  const GptqFactor dead = gptq_factor(MatrixD::Zero(64, 64), true, GptqOptions{});
  SpecErrorOptions request;
  request.ranks = {0, 4};
  const SpecErrors e = measure_spec_errors(w, dead, QuantSpec::parse("4b-g32"), GptqOptions{}, request);
  EXPECT_EQ(e.error[0], 0.0);
  EXPECT_EQ(e.error[1], 0.0);
  // Weights on the grid: no error at any rank.
  const MatrixF zero = MatrixF::Zero(8, 64);
  const GptqFactor f = gptq_factor(test::realistic_hessian(64, 4), true, GptqOptions{});
  const SpecErrors z = measure_spec_errors(zero, f, QuantSpec::parse("4b-g32"), GptqOptions{}, request);
  EXPECT_EQ(z.error[0], 0.0);
  EXPECT_EQ(z.error[1], 0.0);
}

TEST(TopEigen, MatchesTheDenseSolver) {
  // A Gram matrix of a whitened quantization error: a flat spectrum, the hard case.
  const int n = 700, m = 900, k = 48;
  const MatrixF w = test::random_weights(m, n, 31);
  const MatrixD h = test::realistic_hessian(n, 32);
  const GptqFactor f = gptq_factor(h, true, GptqOptions{});
  const QuantizedMatrix q = gptq_quantize(w, f, QuantSpec::parse("3b-g64"), GptqOptions{});
  MatrixD x = (w - dequantize(q)).cast<double>();
  const MatrixD g = x.transpose() * x;
  const TopEigen top = top_eigenpairs(g, k);
  Eigen::SelfAdjointEigenSolver<MatrixD> dense(g);
  const VectorD want = dense.eigenvalues().tail(k).reverse();
  for (int i = 0; i < k; ++i) EXPECT_LT(std::abs(top.values[i] - want[i]), 1e-11 * want[0]) << i;
  // Orthonormal eigenvectors with small residuals.
  EXPECT_LT((top.vectors.transpose() * top.vectors - Eigen::MatrixXd::Identity(k, k)).norm(), 1e-10);
  const Eigen::MatrixXd residual = g * top.vectors - top.vectors * top.values.asDiagonal();
  EXPECT_LT(residual.colwise().norm().maxCoeff(), 1e-10 * want[0]);
}

TEST(TopEigen, SmallAndZeroMatrices) {
  const MatrixD g = MatrixD::Zero(300, 300);
  const TopEigen z = top_eigenpairs(g, 8);
  EXPECT_EQ(z.values.size(), 8);
  EXPECT_EQ(z.values.maxCoeff(), 0.0);
  MatrixD d = MatrixD::Zero(20, 20);
  for (int i = 0; i < 20; ++i) d(i, i) = i;
  const TopEigen t = top_eigenpairs(d, 3);
  EXPECT_DOUBLE_EQ(t.values[0], 19);
  EXPECT_DOUBLE_EQ(t.values[2], 17);
}

}  // namespace
}  // namespace amlq
