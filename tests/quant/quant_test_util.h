#pragma once
// Random weights and realistic Hessians for the quantization and low-rank tests.
#include <random>

#include "core/matrix.h"

namespace amlq::test {

inline MatrixF random_weights(int rows, int cols, uint32_t seed, float sigma = 0.02f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, sigma);
  MatrixF w(rows, cols);
  for (Eigen::Index i = 0; i < w.size(); ++i) w.data()[i] = normal(rng);
  return w;
}

// Calibration inputs like an LLM's: correlated channels and a few channels of
// much larger magnitude (tokens x cols).
inline MatrixF realistic_inputs(int tokens, int cols, uint32_t seed, int outliers = 4) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  MatrixF z(tokens, cols), mix(cols, cols);
  for (Eigen::Index i = 0; i < z.size(); ++i) z.data()[i] = normal(rng);
  for (Eigen::Index i = 0; i < mix.size(); ++i) mix.data()[i] = 0.3f * normal(rng) / std::sqrt(float(cols));
  mix.diagonal().array() += 1.0f;
  MatrixF x = z * mix;
  std::uniform_int_distribution<int> pick(0, cols - 1);
  for (int o = 0; o < outliers; ++o) x.col(pick(rng)) *= 20.0f + 10.0f * o;
  return x;
}

// H = (2/N) X^T X in double (METHOD.md 1).
inline MatrixD hessian_of(const MatrixF& x) {
  const MatrixD xd = x.cast<double>();
  return (2.0 / static_cast<double>(x.rows())) * (xd.transpose() * xd);
}

inline MatrixD realistic_hessian(int cols, uint32_t seed, int tokens = 0) {
  return hessian_of(realistic_inputs(tokens > 0 ? tokens : 2 * cols, cols, seed));
}

}  // namespace amlq::test
