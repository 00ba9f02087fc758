// bench_measure: the measure stage on one LLM-sized linear, the `default`
// recipe space (16 specs x ranks {0, 8, ..., 128}, whitened low-rank), old path
// against new, in one run on one machine (issue 13).
//
//   bench_measure [--quick] [--shapes 4096x4096,11008x4096] [--skip-reference]
//
// Paths (all single-threaded, CPU backend, process CPU seconds):
//   reference  measure_linear_reference: every spec factors H again, tr(E H E^T)
//              from H, low-rank errors from decompose_error (own Cholesky, full
//              eigendecomposition of the error's Gram matrix);
//   exact      measure_site: one factorization, errors from X = E_p U^-1 (fp64
//              triangular solve), top-k eigenpairs of X's Gram matrix (lowrank/top_eigen.h);
//   approx     measure_site --measure-errors approx: X = GPTQ's float32 scaled errors;
//   exact/none and approx/none: the same without low-rank (rank 0 only).
// bound = 1.3 x (one factorization + the sum over specs of one GPTQ pass with
// the shared factor), the target for a linear's whole measure time.
// "GPTQ GFLOP/s" counts specs * m * n^2 + n^3 (what the GPTQ passes and the
// factorization need; bench_gptq_layer's convention) per second of each path,
// against Eigen's single-thread float GEMM rate on this machine.
// "max rel diff" is over every candidate's eps, against the reference.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <time.h>

#include <cmath>
#include <cstring>
#include <tuple>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/log.h"
#include "core/matrix.h"
#include "pipeline/measure_site.h"
#include "quant/gptq.h"
#include "search/recipe_space.h"

namespace {

using namespace amlq;

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

// Hessian of activations with correlated channels and a few large ones, as in
// LLMs (the generator of bench_gptq_layer).
MatrixD realistic_hessian(int n, uint32_t seed) {
  const int tokens = n + 256;
  MatrixF x = random_matrix(tokens, n, seed, 1.0f);
  MatrixF mix = random_matrix(64, n, seed + 1, 0.3f);
  x += random_matrix(tokens, 64, seed + 2, 1.0f) * mix;
  std::mt19937 rng(seed + 3);
  std::uniform_int_distribution<int> pick(0, n - 1);
  for (int o = 0; o < std::max(4, n / 256); ++o) x.col(pick(rng)) *= 20.0f;
  MatrixF h = MatrixF::Zero(n, n);
  h.selfadjointView<Eigen::Lower>().rankUpdate(x.transpose(), 2.0f / tokens);
  h.triangularView<Eigen::StrictlyUpper>() = h.transpose();
  return h.cast<double>();
}

double gemm_gflops(int m, int n) {
  const int k = std::min(n, 1024);
  const MatrixF a = random_matrix(m, k, 1, 1.0f), b = random_matrix(k, n, 2, 1.0f);
  MatrixF c(m, n);
  double best = 1e300;
  for (int r = 0; r < 2; ++r) {
    CpuTimer t;
    c.noalias() = a * b;
    best = std::min(best, t.seconds());
  }
  return 2.0 * m * n * k / best / 1e9;
}

double max_rel_diff(const LayerMeasurement& a, const LayerMeasurement& b) {
  if (a.candidates.size() != b.candidates.size()) return INFINITY;
  double worst = 0;
  for (size_t i = 0; i < a.candidates.size(); ++i) {
    const auto& x = a.candidates[i];
    const auto& y = b.candidates[i];
    if (!(x.spec == y.spec) || x.rank != y.rank) return INFINITY;
    const double scale = std::max(std::abs(x.eps), std::abs(y.eps));
    if (scale > 0) worst = std::max(worst, std::abs(x.eps - y.eps) / scale);
  }
  return worst;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::pair<int, int>> shapes = {{4096, 4096}, {11008, 4096}};
  bool reference = true;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) {
      shapes = {{1024, 1024}, {2752, 1024}};
    } else if (!std::strcmp(argv[i], "--skip-reference")) {
      reference = false;
    } else if (!std::strcmp(argv[i], "--shapes") && i + 1 < argc) {
      shapes.clear();
      std::string list = argv[++i];
      for (size_t at = 0; at < list.size();) {
        const size_t comma = std::min(list.find(',', at), list.size());
        const std::string item = list.substr(at, comma - at);
        shapes.push_back({std::stoi(item.substr(0, item.find('x'))), std::stoi(item.substr(item.find('x') + 1))});
        at = comma + 1;
      }
    } else {
      fmt::print(stderr, "usage: bench_measure [--quick] [--shapes MxN,...] [--skip-reference]\n");
      return 2;
    }
  }
  log::set_level(log::Level::Warn);
  auto backend = make_backend("cpu");
  const RecipeSpace space = load_recipe_space("default");
  fmt::print("measure stage, recipe space '{}' ({} specs x ranks {}), whitened low-rank, CPU backend, 1 thread, "
             "process CPU seconds\n",
             space.name, space.specs.size(), fmt::join(space.ranks, ","));
  for (const auto& [m, n] : shapes) {
    const MatrixF w = random_matrix(m, n, 7, 0.02f);
    SiteStatistics stats;
    stats.hessian = realistic_hessian(n, 11);
    stats.act_scale = stats.hessian.diagonal().cwiseSqrt();
    const double gemm = gemm_gflops(m, n);
    const auto specs = space.applicable_specs(m, n, "bench");

    // The bound: one factorization plus one GPTQ pass per spec with the shared factor.
    GptqOptions gptq;
    CpuTimer tf;
    const GptqFactor factor = gptq_factor(stats.hessian, true, gptq);
    const double factor_s = tf.seconds();
    double passes_s = 0;
    for (const auto& s : specs) {
      CpuTimer tp;
      const QuantizedMatrix q = gptq_quantize(w, factor, s, gptq);
      passes_s += tp.seconds();
    }
    const double bound = 1.3 * (factor_s + passes_s);
    const double work = static_cast<double>(specs.size()) * m * static_cast<double>(n) * n + std::pow(double(n), 3);

    struct Row {
      std::string path;
      double seconds;
      LayerMeasurement table;
    };
    std::vector<Row> rows;
    QuantizeOptions options;
    options.threads = 1;
    options.lowrank = LowRankMethod::Whiten;
    if (reference) {
      CpuTimer t;
      auto table = measure_linear_reference(*backend, options, "bench", w, stats, space);
      rows.push_back({"reference", t.seconds(), std::move(table)});
    }
    for (const auto& [lowrank, mode, label] :
         {std::tuple{LowRankMethod::Whiten, ErrorMode::Exact, "exact"},
          std::tuple{LowRankMethod::Whiten, ErrorMode::Approximate, "approx"},
          std::tuple{LowRankMethod::None, ErrorMode::Exact, "exact/none"},
          std::tuple{LowRankMethod::None, ErrorMode::Approximate, "approx/none"}}) {
      QuantizeOptions o = options;
      o.lowrank = lowrank;
      o.measure_errors = mode;
      CpuTimer t;
      auto table = measure_site(*backend, o, stats, {SiteLinear{"bench", &w}}, space);
      rows.push_back({label, t.seconds(), std::move(table.front())});
    }

    fmt::print("\n{} x {}: factorization {:.2f} s, {} GPTQ passes {:.2f} s, bound 1.3 x {:.2f} = {:.2f} s; "
               "float GEMM {:.1f} GFLOP/s\n",
               m, n, factor_s, specs.size(), passes_s, factor_s + passes_s, bound, gemm);
    fmt::print("{:<12} {:>9} {:>9} {:>11} {:>9} {:>9} {:>14}\n", "path", "seconds", "vs bound", "GPTQ GF/s",
               "of GEMM", "speed-up", "max rel diff");
    const double ref_s = reference ? rows.front().seconds : 0;
    for (const auto& r : rows) {
      const LayerMeasurement* ref = reference ? &rows.front().table : nullptr;
      // Rank-0-only rows are compared on their rank-0 candidates.
      std::string diff = "-";
      if (ref && r.path != "reference") {
        LayerMeasurement a = *ref, b = r.table;
        if (r.path.find("none") != std::string::npos)
          std::erase_if(a.candidates, [](const Candidate& c) { return c.rank > 0; });
        diff = fmt::format("{:.2e}", max_rel_diff(a, b));
      }
      const double gf = work / r.seconds / 1e9;
      fmt::print("{:<12} {:>9.2f} {:>8.2f}x {:>11.1f} {:>8.0f}% {:>9} {:>14}\n", r.path, r.seconds, r.seconds / bound,
                 gf, 100 * gf / gemm, ref_s > 0 ? fmt::format("{:.2f}x", ref_s / r.seconds) : std::string("-"),
                 diff);
    }
    std::fflush(stdout);
  }
  return 0;
}
