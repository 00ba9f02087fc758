#pragma once
// Shared by the CUDA tests: random inputs and the "no device" skip.
#include <gtest/gtest.h>

#include <random>

#include "core/matrix.h"
#include "kernels/device_select.h"

namespace amlq::test {

// GPU tests call this first: they run only where cudaGetDeviceCount finds a device.
#define AMLQ_SKIP_WITHOUT_CUDA_DEVICE()                                                   \
  do {                                                                                    \
    if (::amlq::cuda::cuda_device_count() == 0)                                           \
      GTEST_SKIP() << "no CUDA device (cudaGetDeviceCount reports none); GPU test not run"; \
  } while (0)

inline MatrixF random_matrix(Eigen::Index rows, Eigen::Index cols, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, sigma);
  MatrixF m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = normal(rng);
  return m;
}

// A positive definite Hessian with LLM-like outlier channels: (2/N) X^T X.
inline MatrixD random_hessian(int cols, int tokens, uint32_t seed) {
  MatrixF x = random_matrix(tokens, cols, seed);
  for (int c = 0; c < cols; c += 17) x.col(c) *= 8.0f;
  const MatrixD xd = x.cast<double>();
  return (2.0 / tokens) * (xd.transpose() * xd);
}

// max |a - b| / max(max |b|, tiny): a scale-aware relative error.
template <typename A, typename B>
double relative_max_error(const A& a, const B& b) {
  const double scale = std::max(static_cast<double>(b.cwiseAbs().maxCoeff()), 1e-30);
  return static_cast<double>((a - b).cwiseAbs().maxCoeff()) / scale;
}

}  // namespace amlq::test
