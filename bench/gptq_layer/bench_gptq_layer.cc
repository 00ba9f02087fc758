// bench_gptq_layer: GPTQ (4b g128 act-order) on the CPU backend for LLM-sized
// layers, against this machine's Eigen float GEMM rate.
//
//   bench_gptq_layer [--quick] [--reps N]
//
// GFLOP/s counts m*n^2 (the lazy block updates: sum over blocks of
// 2*m*B*(n - block_end) ~ m*n^2) plus n^3 (Cholesky and triangular inverse of
// the n x n Hessian in double) per quantization, whatever the implementation
// actually does. The GEMM reference is Eigen's float GEMM (m x k) * (k x n)
// with k = min(n, 1024), single thread (EIGEN_DONT_PARALLELIZE), best of reps.
// Rates use process CPU time (the machine may be shared); wall time is shown too.
#include <fmt/format.h>

#include <time.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/matrix.h"
#include "core/timer.h"
#include "quant/error.h"
#include "quant/gptq.h"
#include "quant/quantizer.h"

namespace {

using namespace amlq;

// This process's CPU seconds: on a shared machine wall time mostly measures the
// neighbours; with one thread CPU time is the work done.
class CpuTimer {
 public:
  CpuTimer() : start_(now()) {}
  double seconds() const { return now() - start_; }

 private:
  static double now() {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
  }
  double start_;
};

MatrixF random_matrix(int rows, int cols, uint32_t seed, float sigma) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, sigma);
  MatrixF m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = normal(rng);
  return m;
}

// Hessian of activations with correlated channels and a few large ones, as in LLMs.
MatrixD realistic_hessian(int n, uint32_t seed) {
  const int tokens = n + 256;
  MatrixF x = random_matrix(tokens, n, seed, 1.0f);
  MatrixF mix = random_matrix(64, n, seed + 1, 0.3f);  // a shared low-rank component correlates channels
  x += random_matrix(tokens, 64, seed + 2, 1.0f) * mix;
  std::mt19937 rng(seed + 3);
  std::uniform_int_distribution<int> pick(0, n - 1);
  for (int o = 0; o < std::max(4, n / 256); ++o) x.col(pick(rng)) *= 20.0f;
  MatrixF h = MatrixF::Zero(n, n);
  h.selfadjointView<Eigen::Lower>().rankUpdate(x.transpose(), 2.0f / tokens);
  h.triangularView<Eigen::StrictlyUpper>() = h.transpose();
  return h.cast<double>();
}

double gemm_gflops(int m, int n, int reps) {
  const int k = std::min(n, 1024);
  const MatrixF a = random_matrix(m, k, 1, 1.0f), b = random_matrix(k, n, 2, 1.0f);
  MatrixF c(m, n);
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    CpuTimer t;
    c.noalias() = a * b;
    best = std::min(best, t.seconds());
  }
  return 2.0 * m * n * k / best / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  int reps = 1;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) {
      quick = true;
    } else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else {
      fmt::print(stderr, "usage: bench_gptq_layer [--quick] [--reps N]\n");
      return 2;
    }
  }
  std::vector<std::pair<int, int>> shapes = {{1024, 1024}, {4096, 4096}, {11008, 4096}};
  if (quick) shapes = {{1024, 1024}, {2048, 1024}};

  const QuantSpec spec = QuantSpec::parse("4b-g128");  // act-order is the default
  fmt::print("GPTQ 4b-g128 act-order, block 128, CPU backend (Eigen, 1 thread), best of {}\n", reps);
  fmt::print("{:>6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10} {:>8} {:>10}\n", "m", "n", "cpu_s", "wall_s", "chol_s", "GFLOP/s",
             "gemm_GF/s", "fraction", "eps", "rtn_eps");
  for (const auto& [m, n] : shapes) {
    const MatrixF w = random_matrix(m, n, 7, 0.02f);
    const MatrixD h = realistic_hessian(n, 11);
    double best = 1e300, wall = 1e300;
    QuantizedMatrix q;
    for (int r = 0; r < reps; ++r) {
      CpuTimer t;
      Timer tw;
      q = gptq_quantize(w, h, spec, GptqOptions{});
      best = std::min(best, t.seconds());
      wall = std::min(wall, tw.seconds());
    }
    // The Cholesky / inverse part alone, for the breakdown.
    MatrixD damped = h;
    damped.diagonal().array() += 0.01 * h.diagonal().mean();
    MatrixD u;
    CpuTimer tc;
    inverse_cholesky_upper(damped, u);
    const double chol_s = tc.seconds();
    const double flops = static_cast<double>(m) * n * n + static_cast<double>(n) * n * n;
    const double gflops = flops / best / 1e9;
    const double gemm = gemm_gflops(m, n, reps);
    const double eps = normalize_error(q.output_error, weighted_sq_norm(w, h));
    GptqOptions rtn;
    rtn.error_feedback = false;
    QuantSpec rtn_spec = spec;
    rtn_spec.act_order = false;
    const double rtn_eps = normalized_error(w, dequantize(gptq_quantize(w, MatrixD(), rtn_spec, rtn)), h);
    fmt::print("{:>6} {:>6} {:>9.3f} {:>9.3f} {:>9.3f} {:>9.1f} {:>10.1f} {:>9.0f}% {:>8.2e} {:>10.2e}\n", m, n, best, wall, chol_s,
               gflops, gemm, 100 * gflops / gemm, eps, rtn_eps);
    std::fflush(stdout);
  }
  return 0;
}
