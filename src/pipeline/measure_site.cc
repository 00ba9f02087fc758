#include "pipeline/measure_site.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <optional>
#include <random>

#include "core/error.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/parallel.h"
#include "core/timer.h"
#include "lowrank/decompose.h"
#include "quant/cost_model.h"
#include "quant/error.h"
#include "quant/quantizer.h"

namespace amlq {
namespace {

// What one linear of the site needs, shared by its (linear, spec) work items.
struct LinearPlan {
  const SiteLinear* linear = nullptr;
  int rows = 0;
  int cols = 0;
  std::vector<QuantSpec> specs;
  std::vector<int> ranks;      // the space's ranks this linear can take, in space order
  std::vector<int> rows_used;  // measured rows (all: empty)
  MatrixF sample;              // those rows of W when sampled
  double weight_norm_h = 0;    // tr(W H W^T) over ALL rows: the normalizer

  const MatrixF& measured() const { return rows_used.empty() ? *linear->weight : sample; }
  int measured_rows() const { return rows_used.empty() ? rows : static_cast<int>(rows_used.size()); }
};

struct WorkItem {
  int linear = 0;
  int spec = 0;
};

// Sum over the sampled rows of each column, scaled to the whole matrix
// (m / s), and the standard error of that total under sampling without
// replacement: m^2 (1 - s/m) var(r) / s.
struct RowEstimate {
  double total = 0;
  double stderr_total = 0;
};

RowEstimate estimate_total(const Eigen::Ref<const VectorD>& per_row, int all_rows) {
  const double s = static_cast<double>(per_row.size()), m = all_rows;
  RowEstimate e;
  e.total = per_row.sum() * m / s;
  if (per_row.size() > 1 && s < m) {
    const double mean = per_row.mean();
    const double var = (per_row.array() - mean).square().sum() / (s - 1);
    e.stderr_total = std::sqrt(m * m * (1 - s / m) * var / s);
  }
  return e;
}

}  // namespace

int64_t measured_row_count(int64_t rows, double fraction, int min_rows) {
  if (fraction >= 1) return rows;
  const auto sampled = static_cast<int64_t>(std::ceil(fraction * static_cast<double>(rows)));
  return std::clamp<int64_t>(std::max<int64_t>(sampled, min_rows), 1, rows);
}

std::vector<int> measured_rows(const std::string& name, int rows, double fraction, int min_rows) {
  AMLQ_ASSERT(fraction > 0 && fraction <= 1, "measured row fraction {}", fraction);
  const int count = static_cast<int>(measured_row_count(rows, fraction, min_rows));
  if (count >= rows) return {};
  // Seeded by the name (not by rank or thread): the same rows in every run.
  Hasher h;
  h.update(name);
  const std::string digest = h.hex();
  const uint64_t seed = std::stoull(digest.substr(0, 16), nullptr, 16);
  std::mt19937_64 rng(seed);
  std::vector<int> all(static_cast<size_t>(rows));
  std::iota(all.begin(), all.end(), 0);
  // Partial Fisher-Yates: the first `count` entries are a uniform sample.
  for (int i = 0; i < count; ++i) {
    std::uniform_int_distribution<int> pick(i, rows - 1);
    std::swap(all[static_cast<size_t>(i)], all[static_cast<size_t>(pick(rng))]);
  }
  all.resize(static_cast<size_t>(count));
  std::sort(all.begin(), all.end());
  return all;
}

std::vector<LayerMeasurement> measure_site(Backend& backend, const QuantizeOptions& options,
                                           const SiteStatistics& stats, const std::vector<SiteLinear>& linears,
                                           const RecipeSpace& space) {
  std::vector<LayerMeasurement> out(linears.size());
  if (linears.empty()) return out;
  const int n = static_cast<int>(stats.hessian.rows());
  GptqOptions gptq = options.gptq;
  gptq.error_feedback = !options.rtn;
  const bool sampled = options.measure_rows < 1;

  std::vector<LinearPlan> plans(linears.size());
  bool need_act_order = false, need_plain = false;
  for (size_t l = 0; l < linears.size(); ++l) {
    LinearPlan& p = plans[l];
    p.linear = &linears[l];
    AMLQ_ASSERT(p.linear->weight != nullptr, "{}: no weight", p.linear->name);
    p.rows = static_cast<int>(p.linear->weight->rows());
    p.cols = static_cast<int>(p.linear->weight->cols());
    AMLQ_ASSERT(p.cols == n, "{} has {} columns, its site's Hessian is {} x {}", p.linear->name, p.cols, n, n);
    p.specs = space.applicable_specs(p.rows, p.cols, p.linear->name);
    for (const auto& s : p.specs) (s.act_order ? need_act_order : need_plain) = true;
    for (int r : space.ranks) {
      if (r > std::min(p.rows, p.cols)) continue;
      if (r > 0 && options.lowrank == LowRankMethod::None) continue;
      p.ranks.push_back(r);
    }
    p.rows_used = measured_rows(p.linear->name, p.rows, options.measure_rows, options.measure_rows_min);
    if (!p.rows_used.empty()) {
      p.sample.resize(static_cast<Eigen::Index>(p.rows_used.size()), p.cols);
      for (size_t i = 0; i < p.rows_used.size(); ++i) p.sample.row(static_cast<Eigen::Index>(i)) = p.linear->weight->row(p.rows_used[i]);
    }
  }

  // One factor per column order the specs ask for (usually just act-order).
  Timer timer;
  std::map<bool, std::unique_ptr<SiteFactor>> factors;
  {
    std::vector<bool> orders;
    if (need_act_order) orders.push_back(true);
    if (need_plain) orders.push_back(false);
    std::vector<std::unique_ptr<SiteFactor>> made(orders.size());
    parallel_for(static_cast<int>(orders.size()), options.threads, [&](int i) {
      made[static_cast<size_t>(i)] = backend.factor_site(stats.hessian, orders[static_cast<size_t>(i)], options.gptq);
    });
    for (size_t i = 0; i < orders.size(); ++i) factors[orders[i]] = std::move(made[i]);
  }
  const SiteFactor& any_factor = *factors.begin()->second;
  const SiteFactorInfo& info = any_factor.info();
  if (info.damp_escalations > 0)
    AMLQ_LOG_WARN("{}: dampening raised to {:g} for this input site", linears.front().name, info.damp_used);
  const double factor_seconds = timer.seconds();

  // The normalizer tr(W H W^T), over all rows, once per linear.
  parallel_for(static_cast<int>(plans.size()), options.threads, [&](int l) {
    plans[static_cast<size_t>(l)].weight_norm_h = backend.weighted_sq_norm(*plans[static_cast<size_t>(l)].linear->weight, any_factor);
  });

  std::vector<WorkItem> items;
  for (size_t l = 0; l < plans.size(); ++l)
    for (size_t s = 0; s < plans[l].specs.size(); ++s) items.push_back({static_cast<int>(l), static_cast<int>(s)});
  // One slot per item: the outcome does not depend on the thread count.
  std::vector<std::vector<Candidate>> results(items.size());
  std::vector<double> seconds(items.size(), 0.0);
  const bool whitened = options.lowrank == LowRankMethod::Whiten || options.lowrank == LowRankMethod::None;
  parallel_for(static_cast<int>(items.size()), options.threads, [&](int index) {
    Timer item_timer;
    const WorkItem& item = items[static_cast<size_t>(index)];
    const LinearPlan& p = plans[static_cast<size_t>(item.linear)];
    const QuantSpec& spec = p.specs[static_cast<size_t>(item.spec)];
    const SiteFactor& factor = *factors.at(spec.act_order);
    const MatrixF& w = p.measured();
    const int s = p.measured_rows();

    SpecErrorOptions request;
    request.mode = options.measure_errors;
    request.per_row = sampled;
    int max_rank = 0;
    for (int r : p.ranks) max_rank = std::max(max_rank, std::min(r, s));
    if (whitened) {
      // Ranks above the sample's row count cannot be told apart: clamp (full rows never need it).
      std::vector<int> wanted;
      for (int r : p.ranks) wanted.push_back(std::min(r, s));
      std::sort(wanted.begin(), wanted.end());
      wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
      if (wanted.empty() || wanted.front() != 0) wanted.insert(wanted.begin(), 0);
      request.ranks = wanted;
    } else {
      request.ranks = {0};
    }
    QuantizedMatrix q;
    const SpecErrors errors =
        backend.measure_spec(w, factor, spec, gptq, request, whitened ? nullptr : &q);
    auto rank_index = [&](int r) {
      const auto it = std::find(request.ranks.begin(), request.ranks.end(), std::min(r, s));
      return static_cast<size_t>(it - request.ranks.begin());
    };
    // Non-whitened reconstructions (svd, l2qer) decompose the (sampled) error as before.
    std::optional<LowRankDecomposition> decomposition;
    if (!whitened && max_rank > 0) {
      LowRankOptions lowrank_options;
      lowrank_options.damp = options.gptq.damp;
      lowrank_options.weight_norm_h = p.weight_norm_h * s / p.rows;  // the rows measured
      lowrank_options.error_norm_h = errors.error[0];
      decomposition.emplace(decompose_error(backend, w, dequantize(q), stats.hessian, stats.act_scale,
                                            options.lowrank, max_rank, lowrank_options));
    }
    std::vector<Candidate>& cands = results[static_cast<size_t>(index)];
    for (int r : p.ranks) {
      Candidate c;
      c.spec = spec;
      c.rank = r;
      c.bpw = bits_per_weight(spec, p.rows, p.cols, r, options.factor_format);
      double error = 0, stderr_total = 0;
      if (whitened) {
        const size_t at = rank_index(r);
        if (sampled) {
          const RowEstimate e = estimate_total(errors.per_row.col(static_cast<Eigen::Index>(at)), p.rows);
          error = e.total;
          stderr_total = e.stderr_total;
        } else {
          error = errors.error[at];
        }
        c.eps = normalize_error(error, p.weight_norm_h);
      } else {
        // svd / l2qer: eps of the sampled rows relative to their share of the
        // normalizer; the standard error is the rank-0 one, scaled.
        c.eps = r == 0 ? normalize_error(errors.error[0] * p.rows / s, p.weight_norm_h) : decomposition->eps_at(r);
        if (sampled) {
          const RowEstimate e = estimate_total(errors.per_row.col(0), p.rows);
          const double eps0 = normalize_error(e.total, p.weight_norm_h);
          stderr_total = eps0 > 0 ? e.stderr_total * c.eps / eps0 : 0.0;
        }
      }
      c.eps_stderr = sampled && p.weight_norm_h > 0 ? stderr_total / p.weight_norm_h : 0.0;
      cands.push_back(c);
    }
    seconds[static_cast<size_t>(index)] = item_timer.seconds();
  });

  for (size_t i = 0; i < items.size(); ++i) {
    LayerMeasurement& row = out[static_cast<size_t>(items[i].linear)];
    row.candidates.insert(row.candidates.end(), results[i].begin(), results[i].end());
  }
  for (size_t l = 0; l < plans.size(); ++l) {
    LayerMeasurement& row = out[l];
    row.name = plans[l].linear->name;
    row.rows = plans[l].rows;
    row.cols = plans[l].cols;
    double spent = 0;
    for (size_t i = 0; i < items.size(); ++i)
      if (items[i].linear == static_cast<int>(l)) spent += seconds[i];
    const auto best = std::min_element(row.candidates.begin(), row.candidates.end(),
                                       [](const Candidate& a, const Candidate& b) { return a.eps < b.eps; });
    double worst_rel_stderr = 0;  // the largest standard error relative to its eps (sampled rows only)
    for (const auto& c : row.candidates)
      if (c.eps > 0) worst_rel_stderr = std::max(worst_rel_stderr, c.eps_stderr / c.eps);
    AMLQ_LOG_INFO("{} {} specs x {} ranks -> {} candidates{}, best eps={:.2e}, {:.2f} thread-s", row.name,
                  plans[l].specs.size(), plans[l].ranks.size(), row.candidates.size(),
                  plans[l].rows_used.empty()
                      ? std::string()
                      : fmt::format(" on {} of {} rows (standard error <= {:.1f}% of eps)", plans[l].rows_used.size(),
                                    row.rows, 100 * worst_rel_stderr),
                  best->eps, spent);
  }
  AMLQ_LOG_DEBUG("site of {} ({} linears, {} inputs): factor {:.2f}s, total {:.2f}s", linears.front().name,
                 linears.size(), n, factor_seconds, timer.seconds());
  return out;
}

}  // namespace amlq
