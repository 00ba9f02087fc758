#include <gtest/gtest.h>

#include "quant/error.h"
#include "tests/quant/quant_test_util.h"

namespace amlq {
namespace {

TEST(OutputError, TraceFormEqualsExplicitActivations) {
  const MatrixF x = test::realistic_inputs(300, 40, 1);
  const MatrixD h = test::hessian_of(x);
  const MatrixF w = test::random_weights(7, 40, 2);
  const MatrixF w_hat = w + test::random_weights(7, 40, 3, 0.002f);
  const MatrixD xd = x.cast<double>();
  const double explicit_eps = ((w - w_hat).cast<double>() * xd.transpose()).squaredNorm() /
                              (w.cast<double>() * xd.transpose()).squaredNorm();
  EXPECT_NEAR(normalized_error(w, w_hat, h), explicit_eps, 1e-9 * explicit_eps);
}

TEST(OutputError, ZeroDenominatorsGiveZeroNotNan) {
  const MatrixD h = test::realistic_hessian(16, 1);
  EXPECT_EQ(normalized_error(MatrixF::Zero(3, 16), MatrixF::Zero(3, 16), h), 0.0);
  EXPECT_EQ(normalized_error(MatrixF::Ones(3, 16), MatrixF::Zero(3, 16), MatrixD::Zero(16, 16)), 0.0);
  EXPECT_EQ(normalize_error(-1e-20, 1.0), 0.0);
}

}  // namespace
}  // namespace amlq
