#include "search/search.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "core/log.h"

namespace amlq {
namespace {

double total_numel(const MeasurementTable& table) {
  double n = 0;
  for (const auto& layer : table) n += static_cast<double>(layer.numel());
  return n;
}

double bits_of(const LayerMeasurement& layer, int c) {
  return layer.candidates[c].bpw * static_cast<double>(layer.numel());
}

void require_target(double target_bpw) {
  if (!std::isfinite(target_bpw) || target_bpw <= 0)
    AMLQ_FAIL(Usage, "target bpw must be a positive number, got {}", target_bpw);
}

// Internal decisions use half the tolerance, so that the final check of
// average_bpw against target + tolerance cannot be tipped by rounding.
double budget_bits(const MeasurementTable& table, double target_bpw) {
  return (target_bpw + 0.5 * kBudgetToleranceBpw) * total_numel(table);
}

// The cheapest candidate of a layer; ties go to the lower eps, then the lower index.
int cheapest(const LayerMeasurement& layer) {
  int best = 0;
  for (int c = 1; c < static_cast<int>(layer.candidates.size()); ++c) {
    const auto& a = layer.candidates[c];
    const auto& b = layer.candidates[best];
    if (a.bpw < b.bpw || (a.bpw == b.bpw && a.eps < b.eps)) best = c;
  }
  return best;
}

std::vector<int> cheapest_choice(const MeasurementTable& table) {
  std::vector<int> choice(table.size());
  for (size_t l = 0; l < table.size(); ++l) choice[l] = cheapest(table[l]);
  return choice;
}

void require_achievable(const MeasurementTable& table, double target_bpw) {
  const double min_bpw = average_bpw(table, cheapest_choice(table));
  if (min_bpw > target_bpw + 0.5 * kBudgetToleranceBpw)
    AMLQ_FAIL(Usage,
              "target {} bpw is not achievable: the minimum for these measurements is {:.6f} bpw "
              "(every layer at its cheapest candidate)",
              target_bpw, min_bpw);
}

SearchResult summarize(const MeasurementTable& table, std::vector<int> choice, std::string method,
                       double target_bpw) {
  SearchResult r;
  r.achieved_bpw = average_bpw(table, choice);
  for (size_t l = 0; l < table.size(); ++l) {
    const double eps = table[l].candidates[choice[l]].eps;
    r.max_eps = std::max(r.max_eps, eps);
    r.sum_eps += eps;
  }
  r.threshold = r.max_eps;
  r.choice = std::move(choice);
  r.method = std::move(method);
  r.target_bpw = target_bpw;
  if (target_bpw > 0)
    AMLQ_ASSERT(r.achieved_bpw <= target_bpw + kBudgetToleranceBpw,
                "{} chose {:.12f} bpw over the target {:.12f}", r.method, r.achieved_bpw, target_bpw);
  return r;
}

// Spends leftover budget: repeatedly applies the single-layer switch to a
// lower-eps candidate that fits in what is left and buys the most eps per bit
// (switches that cost no bits first). A layer's eps only ever decreases, so
// this ends after at most (layers x candidates) switches.
void greedy_upgrade(const MeasurementTable& table, std::vector<int>& choice, double budget) {
  double used = 0;
  for (size_t l = 0; l < table.size(); ++l) used += bits_of(table[l], choice[l]);
  for (;;) {
    const double left = budget - used;
    int best_l = -1, best_c = -1;
    bool best_free = false;
    double best_score = 0;
    for (size_t l = 0; l < table.size(); ++l) {
      const auto& layer = table[l];
      const double cur_bits = bits_of(layer, choice[l]);
      const double cur_eps = layer.candidates[choice[l]].eps;
      for (int c = 0; c < static_cast<int>(layer.candidates.size()); ++c) {
        const double d_eps = cur_eps - layer.candidates[c].eps;
        const double d_bits = bits_of(layer, c) - cur_bits;
        if (d_eps <= 0 || d_bits > left) continue;
        const bool is_free = d_bits <= 0;
        const double score = is_free ? d_eps : d_eps / d_bits;
        if (best_l < 0 || (is_free && !best_free) || (is_free == best_free && score > best_score)) {
          best_l = static_cast<int>(l);
          best_c = c;
          best_free = is_free;
          best_score = score;
        }
      }
    }
    if (best_l < 0) return;
    used += bits_of(table[best_l], best_c) - bits_of(table[best_l], choice[best_l]);
    choice[best_l] = best_c;
  }
}

// Per layer, the candidates that are not dominated (another is no more
// expensive and has lower eps, or equal eps and is cheaper / earlier), sorted
// by cost ascending with eps strictly descending. Dominated candidates can
// never improve a min-sum solution.
std::vector<int> pareto_front(const LayerMeasurement& layer) {
  std::vector<int> order(layer.candidates.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    const auto& x = layer.candidates[a];
    const auto& y = layer.candidates[b];
    return x.bpw != y.bpw ? x.bpw < y.bpw : x.eps < y.eps;
  });
  std::vector<int> front;
  for (int c : order)
    if (front.empty() || layer.candidates[c].eps < layer.candidates[front.back()].eps)
      front.push_back(c);
  return front;
}

}  // namespace

std::vector<LayerChoice> SearchResult::layer_choices() const {
  std::vector<LayerChoice> out;
  out.reserve(choice.size());
  for (size_t l = 0; l < choice.size(); ++l) out.push_back({static_cast<int>(l), choice[l]});
  return out;
}

void validate_table(const MeasurementTable& table) {
  AMLQ_REQUIRE(!table.empty(), "measurement table has no layers");
  for (const auto& layer : table) {
    AMLQ_REQUIRE(layer.numel() > 0, "measurement of layer '{}' has shape {}x{}", layer.name, layer.rows,
                 layer.cols);
    AMLQ_REQUIRE(!layer.candidates.empty(), "measurement of layer '{}' has no candidates", layer.name);
    for (const auto& c : layer.candidates) {
      AMLQ_REQUIRE(std::isfinite(c.bpw) && c.bpw >= 0 && std::isfinite(c.eps) && c.eps >= 0,
                   "measurement of layer '{}' has a candidate (rank {}) with bpw={} eps={}", layer.name,
                   c.rank, c.bpw, c.eps);
    }
  }
}

double average_bpw(const MeasurementTable& table, const std::vector<int>& choice) {
  AMLQ_ASSERT(choice.size() == table.size(), "choice has {} entries for {} layers", choice.size(),
              table.size());
  double bits = 0;
  for (size_t l = 0; l < table.size(); ++l) {
    AMLQ_ASSERT(choice[l] >= 0 && choice[l] < static_cast<int>(table[l].candidates.size()),
                "choice {} out of range for layer '{}'", choice[l], table[l].name);
    bits += bits_of(table[l], choice[l]);
  }
  return bits / total_numel(table);
}

SearchResult search_minmax(const MeasurementTable& table, double target_bpw) {
  validate_table(table);
  require_target(target_bpw);
  require_achievable(table, target_bpw);
  const double budget = budget_bits(table, target_bpw);

  // Per layer, the cheapest candidate with eps <= tau; false when some layer has none.
  std::vector<int> picks(table.size());
  auto pick = [&](double tau) {
    for (size_t l = 0; l < table.size(); ++l) {
      const auto& cands = table[l].candidates;
      int best = -1;
      for (int c = 0; c < static_cast<int>(cands.size()); ++c) {
        if (cands[c].eps > tau) continue;
        if (best < 0 || cands[c].bpw < cands[best].bpw ||
            (cands[c].bpw == cands[best].bpw && cands[c].eps < cands[best].eps))
          best = c;
      }
      if (best < 0) return false;
      picks[l] = best;
    }
    return true;
  };
  auto fits = [&](double tau) {
    if (!pick(tau)) return false;
    double bits = 0;
    for (size_t l = 0; l < table.size(); ++l) bits += bits_of(table[l], picks[l]);
    return bits <= budget;
  };

  // Feasibility is monotone in tau and only changes at measured eps values.
  std::vector<double> taus;
  for (const auto& layer : table)
    for (const auto& c : layer.candidates) taus.push_back(c.eps);
  std::sort(taus.begin(), taus.end());
  taus.erase(std::unique(taus.begin(), taus.end()), taus.end());
  size_t lo = 0, hi = taus.size() - 1;  // taus[hi] fits (require_achievable)
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (fits(taus[mid]))
      hi = mid;
    else
      lo = mid + 1;
  }
  const bool ok = fits(taus[hi]);
  AMLQ_ASSERT(ok, "minmax: threshold {} does not fit", taus[hi]);
  SearchResult r = summarize(table, picks, "minmax", target_bpw);
  r.threshold = taus[hi];
  return r;
}

SearchResult search_minsum(const MeasurementTable& table, double target_bpw, const MinSumOptions& options) {
  validate_table(table);
  require_target(target_bpw);
  require_achievable(table, target_bpw);
  AMLQ_REQUIRE(options.grid >= 1, "minsum grid must be >= 1, got {}", options.grid);
  const double budget = budget_bits(table, target_bpw);
  const size_t num_layers = table.size();

  // Every layer pays at least its cheapest candidate; the DP distributes the
  // rest. Costs are materialized once so that every comparison sees the same
  // rounded products (a fused multiply-subtract could turn 0 into +-1ulp).
  std::vector<std::vector<int>> fronts(num_layers);
  std::vector<std::vector<double>> extras(num_layers);
  double base = 0;
  bool integral = true;
  for (size_t l = 0; l < num_layers; ++l) {
    fronts[l] = pareto_front(table[l]);
    const auto& front = fronts[l];
    std::vector<double> bits(front.size());
    for (size_t i = 0; i < front.size(); ++i) bits[i] = bits_of(table[l], front[i]);
    base += bits[0];
    extras[l].resize(front.size());
    for (size_t i = 0; i < front.size(); ++i) {
      extras[l][i] = i == 0 ? 0.0 : std::max(0.0, bits[i] - bits[0]);
      if (extras[l][i] != std::round(extras[l][i])) integral = false;
    }
  }
  const double slack = std::max(0.0, budget - base);
  // Bucket width: 1 bit when the costs are whole bits and the slack fits the
  // grid (then the DP is exact), otherwise slack / grid with costs rounded up.
  size_t buckets;
  double width;
  // Rounding up overstates each chosen cost by up to one bucket, so the table
  // also covers capacities up to one bucket per layer beyond the budget; those
  // end points are only used when their real cost fits (checked below).
  size_t headroom = 0;
  if (integral && slack <= options.grid) {
    width = 1;
    buckets = static_cast<size_t>(std::floor(slack));
  } else {
    buckets = static_cast<size_t>(options.grid);
    width = slack / options.grid;
    headroom = num_layers;
  }
  const size_t capacity = buckets + headroom;
  // Cost in buckets; -1 when the candidate can never fit. front[0] costs 0.
  std::vector<std::vector<int64_t>> costs(num_layers);
  bool narrow = true;
  for (size_t l = 0; l < num_layers; ++l) {
    narrow = narrow && fronts[l].size() <= 256;
    for (double extra : extras[l]) {
      int64_t cost = -1;
      if (extra <= 0)
        cost = 0;
      else if (width > 0 && extra <= slack)
        cost = static_cast<int64_t>(std::ceil(extra / width));
      costs[l].push_back(cost > static_cast<int64_t>(capacity) ? -1 : cost);
    }
  }

  std::vector<int> choice(num_layers);
  auto solve = [&](auto tag) {
    using Index = decltype(tag);
    // best[b]: min sum eps of the layers so far using at most b buckets.
    const size_t row_len = capacity + 1;
    std::vector<double> best(row_len, 0.0), next(row_len);
    std::vector<Index> from(num_layers * row_len);
    for (size_t l = 0; l < num_layers; ++l) {
      Index* row = &from[l * row_len];
      std::fill(next.begin(), next.end(), std::numeric_limits<double>::infinity());
      // Cheapest first with strict '<': among equal sums the cheaper candidate wins.
      for (size_t i = 0; i < fronts[l].size(); ++i) {
        const int64_t cost = costs[l][i];
        if (cost < 0) continue;
        const double eps = table[l].candidates[fronts[l][i]].eps;
        const double* src = best.data();
        for (size_t b = static_cast<size_t>(cost); b < row_len; ++b) {
          const double v = src[b - cost] + eps;
          if (v < next[b]) {
            next[b] = v;
            row[b] = static_cast<Index>(i);
          }
        }
      }
      best.swap(next);
    }
    auto backtrack = [&](size_t b, std::vector<int>& out) {
      double extra = 0;
      for (size_t l = num_layers; l-- > 0;) {
        const size_t i = from[l * row_len + b];
        const int64_t cost = costs[l][i];
        AMLQ_ASSERT(cost >= 0 && static_cast<size_t>(cost) <= b, "minsum backtrack: layer {} cost {} > {}", l,
                    cost, b);
        out[l] = fronts[l][i];
        extra += extras[l][i];
        b -= static_cast<size_t>(cost);
      }
      return extra;
    };
    backtrack(buckets, choice);  // always fits: sum of rounded-up costs <= slack
    double best_value = best[buckets];
    std::vector<int> trial(num_layers);
    for (size_t b = buckets + 1; b <= capacity; ++b) {
      if (!(best[b] < best_value)) continue;
      if (backtrack(b, trial) <= slack) {
        choice = trial;
        best_value = best[b];
      }
    }
  };
  if (narrow)
    solve(uint8_t{});
  else
    solve(uint16_t{});
  AMLQ_ASSERT(average_bpw(table, choice) <= target_bpw + kBudgetToleranceBpw, "minsum DP overran the budget");
  if (options.greedy_upgrade) greedy_upgrade(table, choice, budget);
  AMLQ_LOG_DEBUG("minsum: {} layers, {} buckets of {:.6g} bits, slack {:.6g} bits", num_layers, buckets, width,
                 slack);
  SearchResult result = summarize(table, std::move(choice), "minsum", target_bpw);
  // Rounding costs up can strand up to one bucket per layer; the Lagrangian
  // solution uses exact costs, so keep it when it happens to be better.
  if (options.compare_lagrange) {
    SearchResult lagrange = search_minsum_lagrange(table, target_bpw);
    if (lagrange.sum_eps < result.sum_eps) {
      AMLQ_LOG_DEBUG("minsum: Lagrangian solution is better ({:.6e} < {:.6e})", lagrange.sum_eps, result.sum_eps);
      lagrange.method = "minsum";
      return lagrange;
    }
  }
  return result;
}

SearchResult search_minsum_lagrange(const MeasurementTable& table, double target_bpw) {
  validate_table(table);
  require_target(target_bpw);
  require_achievable(table, target_bpw);
  const double budget = budget_bits(table, target_bpw);
  const double numel = total_numel(table);
  // Costs in bpw contributed to the model average, so lambda is in eps per bpw.
  auto cost = [&](size_t l, int c) { return bits_of(table[l], c) / numel; };

  std::vector<int> picks(table.size());
  auto fits = [&](double lambda) {
    double bits = 0;
    for (size_t l = 0; l < table.size(); ++l) {
      const auto& cands = table[l].candidates;
      int best = 0;
      double best_obj = cands[0].eps + lambda * cost(l, 0);
      for (int c = 1; c < static_cast<int>(cands.size()); ++c) {
        const double obj = cands[c].eps + lambda * cost(l, c);
        const auto& b = cands[best];
        if (obj < best_obj || (obj == best_obj && (cands[c].bpw < b.bpw ||
                                                   (cands[c].bpw == b.bpw && cands[c].eps < b.eps)))) {
          best = c;
          best_obj = obj;
        }
      }
      picks[l] = best;
      bits += bits_of(table[l], best);
    }
    return bits <= budget;
  };

  std::vector<int> choice;
  if (fits(0)) {
    choice = picks;
  } else {
    // A lambda above every layer's steepest eps-per-cost slope picks the cheapest candidates.
    double hi = 0;
    for (size_t l = 0; l < table.size(); ++l) {
      const int cheap = cheapest(table[l]);
      for (int c = 0; c < static_cast<int>(table[l].candidates.size()); ++c) {
        const double d_cost = cost(l, c) - cost(l, cheap);
        const double d_eps = table[l].candidates[cheap].eps - table[l].candidates[c].eps;
        if (d_cost > 0 && d_eps > 0) hi = std::max(hi, d_eps / d_cost);
      }
    }
    hi = hi > 0 ? 2 * hi : 1;
    if (!fits(hi)) {
      choice = cheapest_choice(table);  // floating-point corner: the cheapest always fits here
    } else {
      double lo = 0;
      for (int it = 0; it < 200; ++it) {
        const double mid = 0.5 * (lo + hi);
        if (mid <= lo || mid >= hi) break;
        (fits(mid) ? hi : lo) = mid;
      }
      const bool ok = fits(hi);
      AMLQ_ASSERT(ok, "lagrange: lambda {} does not fit", hi);
      choice = picks;
    }
  }
  greedy_upgrade(table, choice, budget);
  return summarize(table, std::move(choice), "minsum-lagrange", target_bpw);
}

namespace {

// Index of `layer`'s candidate at (spec, rank), or -1 when it was not measured.
int find_candidate(const LayerMeasurement& layer, const QuantSpec& spec, int rank) {
  const auto& cands = layer.candidates;
  auto it = std::find_if(cands.begin(), cands.end(), [&](const Candidate& c) { return c.spec == spec && c.rank == rank; });
  return it == cands.end() ? -1 : static_cast<int>(it - cands.begin());
}

// "3b-g64, 3b-g64-r8, ...": what `layer` was measured at, for error messages.
std::string measured_configurations(const LayerMeasurement& layer) {
  std::string out;
  for (const auto& c : layer.candidates)
    out += fmt::format("{}{}{}", out.empty() ? "" : ", ", c.spec.label(), c.rank > 0 ? fmt::format("-r{}", c.rank) : "");
  return out;
}

}  // namespace

SearchResult search_uniform(const MeasurementTable& table, const QuantSpec& spec, int rank) {
  validate_table(table);
  const std::string label = rank > 0 ? fmt::format("{}-r{}", spec.label(), rank) : spec.label();
  std::vector<int> choice(table.size());
  for (size_t l = 0; l < table.size(); ++l) {
    choice[l] = find_candidate(table[l], spec, rank);
    if (choice[l] < 0)
      AMLQ_FAIL(Usage, "uniform:{}: layer '{}' was not measured at {} rank {} (measured: {})", label, table[l].name,
                spec.label(), rank, measured_configurations(table[l]));
  }
  return summarize(table, std::move(choice), "uniform:" + label, 0);
}

SearchResult search_listed(const MeasurementTable& table, const std::vector<ListedChoice>& listed,
                           const std::string& origin) {
  validate_table(table);
  std::vector<int> choice(table.size(), -1);
  for (const ListedChoice& want : listed) {
    auto layer = std::find_if(table.begin(), table.end(), [&](const LayerMeasurement& l) { return l.name == want.name; });
    if (layer == table.end())
      AMLQ_FAIL(Input, "{}: lists '{}', which is not a quantized linear of this model", origin, want.name);
    const size_t l = static_cast<size_t>(layer - table.begin());
    if (choice[l] >= 0) AMLQ_FAIL(Input, "{}: lists '{}' twice", origin, want.name);
    choice[l] = find_candidate(*layer, want.spec, want.rank);
    if (choice[l] < 0)
      AMLQ_FAIL(Usage, "{}: '{}' was not measured at {} rank {} (measured: {})", origin, want.name, want.spec.label(),
                want.rank, measured_configurations(*layer));
  }
  for (size_t l = 0; l < table.size(); ++l)
    if (choice[l] < 0) AMLQ_FAIL(Input, "{}: does not list '{}' (every quantized linear needs a configuration)", origin,
                                 table[l].name);
  SearchResult r = summarize(table, std::move(choice), "plan:" + origin, 0);
  r.predicted_delta_nll = predicted_delta_nll(table, r.choice);
  return r;
}

std::pair<QuantSpec, int> parse_uniform_search(const std::string& method) {
  const std::string prefix = "uniform:";
  if (!method.starts_with(prefix)) AMLQ_FAIL(Usage, "search method '{}' is not uniform:<spec>[-r<rank>]", method);
  std::string label = method.substr(prefix.size());
  int rank = 0;
  // A trailing "-r<digits>" is the rank; "-row" is a group size and stays.
  const size_t dash = label.rfind("-r");
  if (dash != std::string::npos && dash + 2 < label.size() &&
      std::all_of(label.begin() + dash + 2, label.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
    const std::string digits = label.substr(dash + 2);
    if (digits.size() > 6) AMLQ_FAIL(Usage, "search method '{}': rank {} is too large", method, digits);
    rank = std::stoi(digits);
    label.resize(dash);
  }
  return {QuantSpec::parse(label), rank};
}

bool has_sensitivities(const MeasurementTable& table) {
  return !table.empty() && std::all_of(table.begin(), table.end(), [](const LayerMeasurement& l) {
    return std::isfinite(l.alpha) && l.alpha > 0;
  });
}

MeasurementTable loss_weighted(const MeasurementTable& table) {
  AMLQ_ASSERT(has_sensitivities(table), "loss_weighted needs alpha > 0 for every linear");
  MeasurementTable out = table;
  for (auto& layer : out)
    for (auto& c : layer.candidates) {
      c.eps *= layer.alpha;
      c.eps_stderr *= layer.alpha;
    }
  return out;
}

double predicted_delta_nll(const MeasurementTable& table, const std::vector<int>& choice) {
  if (!has_sensitivities(table)) return 0;
  AMLQ_ASSERT(choice.size() == table.size(), "choice has {} layers, table {}", choice.size(), table.size());
  double sum = 0;
  for (size_t l = 0; l < table.size(); ++l) sum += table[l].alpha * table[l].candidates[choice[l]].eps;
  return sum;
}

namespace {

// A search run on alpha-weighted errors, summarized in plain eps again (the
// threshold of a weighted minmax stays in alpha * eps).
SearchResult weighted_search(const MeasurementTable& table, const std::string& method, double target_bpw) {
  const MeasurementTable weighted = loss_weighted(table);
  const bool minmax = method == "minmax-weighted";
  const SearchResult w = minmax ? search_minmax(weighted, target_bpw) : search_minsum(weighted, target_bpw);
  SearchResult r = summarize(table, w.choice, method, target_bpw);
  if (minmax) r.threshold = w.threshold;
  r.loss_weighted = true;
  return r;
}

}  // namespace

SearchResult run_search(const MeasurementTable& table, const std::string& method, double target_bpw) {
  SearchResult r;
  const std::string prefix = "uniform:";
  if (method == "minmax") {
    r = search_minmax(table, target_bpw);
  } else if (method == "minsum" || method == "minmax-weighted") {
    if (has_sensitivities(table)) {
      r = weighted_search(table, method, target_bpw);
    } else {
      AMLQ_LOG_WARN("{}: the measurements hold no loss sensitivities (--sensitivity-windows 0, or an older file): "
                    "every linear's eps is weighed alike",
                    method);
      r = method == "minsum" ? search_minsum(table, target_bpw) : search_minmax(table, target_bpw);
      r.method = method;
    }
  } else if (method == "minsum-unweighted") {
    r = search_minsum(table, target_bpw);
    r.method = method;
  } else if (method == "minsum-lagrange") {
    r = search_minsum_lagrange(table, target_bpw);
  } else if (method.starts_with(prefix)) {
    const auto [spec, rank] = parse_uniform_search(method);
    r = search_uniform(table, spec, rank);
    if (target_bpw > 0 && r.achieved_bpw > target_bpw + kBudgetToleranceBpw)
      AMLQ_LOG_WARN("{} gives {:.4f} bpw, above the target {:.4f} (uniform ignores the target)", method,
                    r.achieved_bpw, target_bpw);
    r.target_bpw = target_bpw;
  } else {
    AMLQ_FAIL(Usage,
              "unknown search method '{}' (expected minsum, minsum-unweighted, minmax, minmax-weighted, "
              "minsum-lagrange or uniform:<spec>[-r<rank>], e.g. uniform:4b-g128-r8)",
              method);
  }
  r.predicted_delta_nll = predicted_delta_nll(table, r.choice);
  return r;
}

std::vector<std::string> parse_validated_plans(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = std::min(list.find(',', start), list.size());
    const std::string name = list.substr(start, comma - start);
    start = comma + 1;
    if (name.empty() && list.empty()) break;
    const bool known = std::find(kValidatedPlanNames.begin(), kValidatedPlanNames.end(), name) !=
                       kValidatedPlanNames.end();
    if (!known)
      AMLQ_FAIL(Usage, "--validate-plans: unknown plan '{}' (expected a comma-separated list of {})", name,
                fmt::join(kValidatedPlanNames, ", "));
    if (std::find(out.begin(), out.end(), name) != out.end())
      AMLQ_FAIL(Usage, "--validate-plans: '{}' is listed twice", name);
    out.push_back(name);
  }
  return out;
}

namespace {

// "front:<lo>+<hi>" (or "uniform:<lo>" at the top of the front); nullopt when
// no uniform configuration fits the budget.
std::optional<SearchResult> front_plan(const MeasurementTable& table, double target_bpw) {
  // The uniform configurations (rank 0) every linear was measured at, with the
  // loss they predict; the front keeps those no cheaper one beats.
  const bool weighted = has_sensitivities(table);
  struct Uniform {
    QuantSpec spec;
    std::vector<int> choice;
    double bpw = 0, loss = 0;
  };
  std::vector<Uniform> uniform;
  for (const Candidate& c : table.front().candidates) {
    if (c.rank != 0) continue;
    Uniform u{c.spec, std::vector<int>(table.size()), 0, 0};
    bool everywhere = true;
    for (size_t l = 0; l < table.size() && everywhere; ++l) {
      u.choice[l] = find_candidate(table[l], c.spec, 0);
      everywhere = u.choice[l] >= 0;
    }
    if (!everywhere) continue;
    u.bpw = average_bpw(table, u.choice);
    for (size_t l = 0; l < table.size(); ++l)
      u.loss += (weighted ? table[l].alpha : 1.0) * table[l].candidates[static_cast<size_t>(u.choice[l])].eps;
    uniform.push_back(std::move(u));
  }
  std::sort(uniform.begin(), uniform.end(), [](const Uniform& a, const Uniform& b) {
    return a.bpw != b.bpw ? a.bpw < b.bpw : a.loss < b.loss;
  });
  std::vector<const Uniform*> front;
  for (const auto& u : uniform)
    if (front.empty() || u.loss < front.back()->loss) front.push_back(&u);
  const Uniform* below = nullptr;
  const Uniform* above = nullptr;
  for (const Uniform* u : front) {
    if (u->bpw <= target_bpw + kBudgetToleranceBpw) {
      below = u;
    } else {
      above = u;
      break;
    }
  }
  if (below == nullptr) return std::nullopt;
  if (above == nullptr) {
    SearchResult r = summarize(table, below->choice, "uniform:" + below->spec.label(), target_bpw);
    r.predicted_delta_nll = predicted_delta_nll(table, r.choice);
    return r;
  }
  // Min-sum over the two neighbours only: each linear keeps `below` or moves
  // up to `above`, the small moves the additive loss model predicts best.
  MeasurementTable pair = table;
  for (size_t l = 0; l < table.size(); ++l)
    pair[l].candidates = {table[l].candidates[static_cast<size_t>(below->choice[l])],
                          table[l].candidates[static_cast<size_t>(above->choice[l])]};
  const SearchResult p = weighted ? search_minsum(loss_weighted(pair), target_bpw) : search_minsum(pair, target_bpw);
  std::vector<int> choice(table.size());
  for (size_t l = 0; l < table.size(); ++l)
    choice[l] = p.choice[l] == 0 ? below->choice[l] : above->choice[l];
  SearchResult r = summarize(table, std::move(choice),
                             fmt::format("front:{}+{}", below->spec.label(), above->spec.label()), target_bpw);
  r.loss_weighted = weighted;
  r.predicted_delta_nll = predicted_delta_nll(table, r.choice);
  return r;
}

}  // namespace

std::vector<SearchResult> plan_alternatives(const MeasurementTable& table, const SearchResult& asked,
                                            double target_bpw, const std::vector<std::string>& alternatives) {
  validate_table(table);
  std::vector<SearchResult> out = {asked};
  auto add = [&](SearchResult r) {
    for (const auto& have : out)
      if (have.choice == r.choice) return;
    out.push_back(std::move(r));
  };
  for (const std::string& name : alternatives) {
    if (name == "front") {
      if (auto r = front_plan(table, target_bpw)) add(std::move(*r));
    } else if (name != asked.method) {
      add(run_search(table, name, target_bpw));
    }
  }
  return out;
}

bool is_budgeted_search(std::string_view method) {
  return !method.starts_with("uniform:") && !method.starts_with(kPlanSearchPrefix);
}

int max_validated_plans(std::string_view method, const std::vector<std::string>& alternatives) {
  if (!is_budgeted_search(method)) return 1;
  int plans = 1;
  for (const auto& name : alternatives) plans += name == method ? 0 : 1;
  return plans;
}

std::string format_allocation(const MeasurementTable& table, const SearchResult& result) {
  AMLQ_ASSERT(result.choice.size() == table.size(), "result has {} layers, table {}", result.choice.size(),
              table.size());
  size_t name_w = 5, spec_w = 4;
  std::vector<std::string> labels(table.size());
  for (size_t l = 0; l < table.size(); ++l) {
    labels[l] = table[l].candidates[result.choice[l]].spec.label();
    name_w = std::max(name_w, table[l].name.size());
    spec_w = std::max(spec_w, labels[l].size());
  }
  std::string out = fmt::format("{:<{}}  {:<{}}  {:>5}  {:>8}  {:>10}\n", "layer", name_w, "spec", spec_w, "rank",
                                "bpw", "eps");
  for (size_t l = 0; l < table.size(); ++l) {
    const auto& c = table[l].candidates[result.choice[l]];
    out += fmt::format("{:<{}}  {:<{}}  {:>5}  {:>8.4f}  {:>10.4e}\n", table[l].name, name_w, labels[l], spec_w,
                       c.rank, c.bpw, c.eps);
  }
  int64_t weights = 0;
  for (const auto& layer : table) weights += layer.numel();
  out += fmt::format("method {}: {} layers, {} weights, average {:.4f} bpw", result.method, table.size(),
                     weights, result.achieved_bpw);
  if (result.target_bpw > 0) out += fmt::format(" (target {:.4f})", result.target_bpw);
  out += fmt::format(", max eps {:.4e}, sum eps {:.4e}", result.max_eps, result.sum_eps);
  if (result.method.starts_with("minmax")) out += fmt::format(", threshold {:.4e}", result.threshold);
  if (result.predicted_delta_nll > 0) out += fmt::format(", predicted NLL increase {:.4f}", result.predicted_delta_nll);
  out += "\n";
  return out;
}

}  // namespace amlq
