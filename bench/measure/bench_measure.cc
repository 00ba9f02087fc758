// bench_measure: the measure stage on one LLM-sized linear, the `default`
// recipe space (16 specs x ranks {0, 8, ..., 128}, whitened low-rank), old path
// against new, in one run on one machine (issue 13).
//
//   bench_measure [--quick] [--shapes 4096x4096,11008x4096] [--skip-reference]
//                 [--paths reference,exact,approx,exact/none,approx/none] [--rows 0.5,0.25] [--floor]
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
//
// --floor: what exact errors add per spec beyond the bound's terms, timed once
// on a random m x n error: the fp64 triangular solve X = E_p U^-1 (every exact
// path), and with low rank the Gram matrix of X and its top-k eigenpairs
// (lowrank/top_eigen.h). The exact paths are then also compared with
// 1.3 x (bound's terms + specs x those), the floor of the exact design.
//
// --rows F,...: after the paths, the exact paths again with --measure-rows F
// (the default floor of 256 rows), each against its own full-row table: the
// Spearman rank correlation of the candidates' eps, the largest relative
// difference and standard error, and how often the cheapest-eps candidate
// under a bpw cap (every candidate's bpw in turn as the cap) stays the same.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <tuple>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/log.h"
#include "core/matrix.h"
#include "lowrank/top_eigen.h"
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

// Pearson correlation of the ranks of a's and b's eps (no ties among floats in practice).
double spearman(const LayerMeasurement& a, const LayerMeasurement& b) {
  const size_t count = a.candidates.size();
  auto ranks = [count](const LayerMeasurement& t) {
    std::vector<size_t> order(count);
    for (size_t i = 0; i < count; ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&t](size_t x, size_t y) { return t.candidates[x].eps < t.candidates[y].eps; });
    std::vector<double> r(count);
    for (size_t i = 0; i < count; ++i) r[order[i]] = static_cast<double>(i);
    return r;
  };
  const auto ra = ranks(a), rb = ranks(b);
  const double mean = (static_cast<double>(count) - 1) / 2;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < count; ++i) {
    sab += (ra[i] - mean) * (rb[i] - mean);
    saa += (ra[i] - mean) * (ra[i] - mean);
    sbb += (rb[i] - mean) * (rb[i] - mean);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 1.0;
}

// Index of the smallest-eps candidate with bpw <= cap (-1 if none).
int cheapest_under(const LayerMeasurement& t, double cap) {
  int best = -1;
  for (size_t i = 0; i < t.candidates.size(); ++i) {
    const auto& c = t.candidates[i];
    if (c.bpw <= cap && (best < 0 || c.eps < t.candidates[static_cast<size_t>(best)].eps)) best = static_cast<int>(i);
  }
  return best;
}

// "a,b,c" -> {"a", "b", "c"}.
std::vector<std::string> split_list(const std::string& list) {
  std::vector<std::string> out;
  for (size_t at = 0; at < list.size();) {
    const size_t comma = std::min(list.find(',', at), list.size());
    out.push_back(list.substr(at, comma - at));
    at = comma + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::pair<int, int>> shapes = {{4096, 4096}, {11008, 4096}};
  bool reference = true;
  std::vector<std::string> paths = {"exact", "approx", "exact/none", "approx/none"};
  std::vector<double> row_fractions;
  bool floor = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) {
      shapes = {{1024, 1024}, {2752, 1024}};
    } else if (!std::strcmp(argv[i], "--skip-reference")) {
      reference = false;
    } else if (!std::strcmp(argv[i], "--paths") && i + 1 < argc) {
      paths.clear();
      reference = false;
      for (const std::string& item : split_list(argv[++i])) {
        if (item == "reference") {
          reference = true;
        } else if (item == "exact" || item == "approx" || item == "exact/none" || item == "approx/none") {
          paths.push_back(item);
        } else {
          fmt::print(stderr, "bench_measure: unknown path '{}' in --paths\n", item);
          return 2;
        }
      }
    } else if (!std::strcmp(argv[i], "--floor")) {
      floor = true;
    } else if (!std::strcmp(argv[i], "--rows") && i + 1 < argc) {
      for (const std::string& item : split_list(argv[++i])) {
        const double f = std::stod(item);
        if (!(f > 0 && f < 1)) {
          fmt::print(stderr, "bench_measure: --rows fractions must lie in (0, 1), got {}\n", f);
          return 2;
        }
        row_fractions.push_back(f);
      }
    } else if (!std::strcmp(argv[i], "--shapes") && i + 1 < argc) {
      shapes.clear();
      for (const std::string& item : split_list(argv[++i]))
        shapes.push_back({std::stoi(item.substr(0, item.find('x'))), std::stoi(item.substr(item.find('x') + 1))});
    } else {
      fmt::print(stderr,
                 "usage: bench_measure [--quick] [--shapes MxN,...] [--skip-reference] [--paths P,...] "
                 "[--rows F,...] [--floor]\n");
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
      if (std::find(paths.begin(), paths.end(), std::string(label)) == paths.end()) continue;
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

    if (floor) {
      const int k = std::min({space.ranks.back(), m, n});
      MatrixD x = random_matrix(m, n, 13, 1.0f).cast<double>();
      CpuTimer ts;
      factor.u.triangularView<Eigen::Upper>().solveInPlace<Eigen::OnTheRight>(x);
      const double solve_s = ts.seconds();
      CpuTimer tg;
      const Eigen::Index side = std::min(m, n);
      MatrixD gram = MatrixD::Zero(side, side);
      if (m <= n) {
        gram.selfadjointView<Eigen::Lower>().rankUpdate(x);
      } else {
        gram.selfadjointView<Eigen::Lower>().rankUpdate(x.transpose());
      }
      gram.triangularView<Eigen::StrictlyUpper>() = gram.transpose();
      const double gram_s = tg.seconds();
      CpuTimer te;
      const TopEigen top = top_eigenpairs(gram, k);
      const double top_s = te.seconds();
      const double count = static_cast<double>(specs.size());
      const double floor_none = 1.3 * (factor_s + passes_s + count * solve_s);
      const double floor_lowrank = 1.3 * (factor_s + passes_s + count * (solve_s + gram_s + top_s));
      fmt::print("\nexact errors per spec: solve X = E_p U^-1 {:.2f} s, Gram of X {:.2f} s, top {} eigenpairs {:.2f} s "
                 "(largest {:.3g})\n",
                 solve_s, gram_s, k, top_s, top.values.size() > 0 ? top.values[0] : 0.0);
      fmt::print("{:<12} {:>9} {:>22} {:>9}\n", "path", "seconds", "floor of the design", "vs floor");
      for (const auto& r : rows) {
        if (r.path != "exact" && r.path != "exact/none") continue;
        const double f = r.path == "exact" ? floor_lowrank : floor_none;
        fmt::print("{:<12} {:>9.2f} {:>22.2f} {:>8.2f}x\n", r.path, r.seconds, f, r.seconds / f);
      }
      std::fflush(stdout);
    }

    if (row_fractions.empty()) continue;
    fmt::print("\n{} x {}, --measure-rows F (floor {} rows) against full rows:\n", m, n, options.measure_rows_min);
    fmt::print("{:<12} {:>6} {:>6} {:>9} {:>9} {:>10} {:>13} {:>14} {:>13}\n", "path", "F", "rows", "seconds",
               "speed-up", "spearman", "same pick", "max rel diff", "max se/eps");
    for (const auto& full : rows) {
      if (full.path != "exact" && full.path != "exact/none") continue;
      for (double f : row_fractions) {
        QuantizeOptions o = options;
        o.lowrank = full.path == "exact" ? LowRankMethod::Whiten : LowRankMethod::None;
        o.measure_errors = ErrorMode::Exact;
        o.measure_rows = f;
        CpuTimer t;
        auto sampled = std::move(measure_site(*backend, o, stats, {SiteLinear{"bench", &w}}, space).front());
        const double seconds = t.seconds();
        int same = 0, caps = 0;
        for (const auto& c : full.table.candidates) {
          ++caps;
          same += cheapest_under(full.table, c.bpw) == cheapest_under(sampled, c.bpw);
        }
        double worst_se = 0;
        for (const auto& c : sampled.candidates)
          if (c.eps > 0) worst_se = std::max(worst_se, c.eps_stderr / c.eps);
        const int used = static_cast<int>(measured_rows("bench", m, f, o.measure_rows_min).size());
        fmt::print("{:<12} {:>6.3g} {:>6} {:>9.2f} {:>8.2f}x {:>10.4f} {:>13} {:>14.2e} {:>12.1f}%\n", full.path, f,
                   used == 0 ? m : used, seconds, full.seconds / seconds, spearman(full.table, sampled),
                   fmt::format("{}/{}", same, caps), max_rel_diff(full.table, sampled), 100 * worst_se);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
