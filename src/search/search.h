#pragma once
// Global bit allocation: choose one measured candidate per layer so that the
// model's weight-count-weighted average bpw stays within a target (METHOD.md 7).
//
// Budget rule shared by every method: a choice fits when
//   average_bpw(choice) <= target_bpw + kBudgetToleranceBpw.
// The tolerance only absorbs floating-point summation noise (a uniform 4b-g128
// model must fit a 4.15625 target); no method ever trades error for it.
#include <array>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "search/measurement.h"

namespace amlq {

inline constexpr double kBudgetToleranceBpw = 1e-9;

struct LayerChoice {
  int layer = 0;
  int candidate = 0;  // index into table[layer].candidates
};

struct SearchResult {
  std::vector<int> choice;  // per layer (table order): index into table[l].candidates
  double target_bpw = 0;    // what was asked (0 for uniform)
  double achieved_bpw = 0;  // numel-weighted mean bpw of the choice
  double max_eps = 0;
  double sum_eps = 0;
  double threshold = 0;     // minmax: the smallest feasible tau (== max_eps); others: max_eps
  std::string method;       // as asked: "minsum", "minmax", "minsum-unweighted", ... (run_search)
  bool loss_weighted = false;  // the objective was alpha * eps (else eps)
  // sum_l alpha_l * eps_l of the choice: the mean token NLL increase the
  // sensitivities predict (0 when the table has none).
  double predicted_delta_nll = 0;
  std::vector<LayerChoice> layer_choices() const;
};

// Knobs of the min-sum solvers; the defaults are what run_search uses.
struct MinSumOptions {
  // Buckets the budget slack (budget minus the cheapest model) is cut into by
  // the DP. Costs are rounded UP to whole buckets, so the DP result always fits;
  // it is exact whenever every candidate's extra cost is a multiple of the
  // bucket width (integer bit costs with slack <= grid are handled with width 1).
  int grid = 65536;
  // Use leftover budget (rounding slack) for greedy eps-per-bit upgrades.
  bool greedy_upgrade = true;
  // Also run search_minsum_lagrange and return whichever has the lower sum eps
  // (rounding up can strand up to one bucket per layer; the Lagrangian uses
  // exact costs). Both fit the budget, so the result only gets better.
  bool compare_lagrange = true;
};

// Weight-count-weighted mean bpw. choice.size() must equal table.size().
double average_bpw(const MeasurementTable& table, const std::vector<int>& choice);

// Throws Input unless every layer has numel > 0 and >= 1 candidate, and every
// candidate has finite bpw >= 0 and finite eps >= 0.
void validate_table(const MeasurementTable& table);

// AMLQ min-max: the smallest threshold tau such that picking, per layer, the
// cheapest candidate with eps <= tau (ties: lower eps, then lower index) fits.
// Instead of bisecting tau to 1e-5, binary search runs over the sorted distinct
// measured eps values: the picks only change there, so the threshold found is
// exactly the smallest feasible one. Throws Usage (stating the minimum
// achievable bpw) when even the cheapest candidates exceed the target.
SearchResult search_minmax(const MeasurementTable& table, double target_bpw);

// Min-sum: minimize sum_l eps under the budget. The default method: a dynamic
// program over the budget slack (budget minus the cheapest model) cut into
// MinSumOptions::grid buckets, per-layer costs rounded UP so the answer always
// fits; exact whenever the bucket width divides every cost (always for whole-bit
// costs with slack <= grid, where the width is 1 bit), otherwise exact up to one
// bucket per layer (end points up to one bucket per layer past the budget are
// tried too and kept when their real cost fits). Then a greedy upgrade spends
// what rounding left over, and
// the Lagrangian solution is taken instead if it is better.
// Memory: layers x (grid + layers) bytes; time: layers x grid x (Pareto candidates).
SearchResult search_minsum(const MeasurementTable& table, double target_bpw,
                           const MinSumOptions& options = {});

// Min-sum by Lagrangian relaxation: per layer argmin eps + lambda * bits, with
// the smallest feasible lambda found by bisection, then the greedy upgrade pass.
// Near-optimal and cheaper than the DP, but without an exactness guarantee.
SearchResult search_minsum_lagrange(const MeasurementTable& table, double target_bpw);

// The same (spec, rank) in every layer. Throws Usage naming the first layer
// that was not measured at that configuration. Ignores any budget.
SearchResult search_uniform(const MeasurementTable& table, const QuantSpec& spec, int rank);

// `--search plan:<file>`: pack the configurations a file lists (pipeline reads it).
inline constexpr std::string_view kPlanSearchPrefix = "plan:";

// One linear's configuration as a plan file names it (search "plan:<file>").
struct ListedChoice {
  std::string name;  // "model.layers.3.mlp.down_proj"
  QuantSpec spec;
  int rank = 0;
};

// The listed configuration of every linear of the table, by name (any order).
// Throws Input naming `origin` when a linear of the table is not listed, one is
// listed twice, or a listed name is not in the table; Usage when a listed
// (spec, rank) was not measured. Ignores any budget.
SearchResult search_listed(const MeasurementTable& table, const std::vector<ListedChoice>& listed,
                           const std::string& origin);

// "uniform:<spec label>[-r<rank>]" -> (spec, rank). Throws Usage when malformed.
std::pair<QuantSpec, int> parse_uniform_search(const std::string& method);

// Whether every linear has a loss sensitivity alpha > 0 (pipeline/sensitivity.h).
bool has_sensitivities(const MeasurementTable& table);
// The table with every candidate's eps (and stderr) multiplied by its linear's alpha.
MeasurementTable loss_weighted(const MeasurementTable& table);
// sum_l alpha_l * eps_l(choice); 0 without sensitivities.
double predicted_delta_nll(const MeasurementTable& table, const std::vector<int>& choice);

// method:
//   "minsum"            min sum alpha_l eps_l (loss-weighted, METHOD.md 7); without
//                       sensitivities in the table, min sum eps with a warning
//   "minsum-unweighted" min sum eps
//   "minmax"            AMLQ's min-max threshold on eps
//   "minmax-weighted"   the same threshold on alpha_l * eps_l
//   "minsum-lagrange"   min sum eps by Lagrangian relaxation only
//   "uniform:<spec label>[-r<rank>]" (e.g. "uniform:4b-g128-r8")
// ("plan:<file>" is read by the pipeline: search_listed.)
// Throws Usage on an unknown method. For uniform, target_bpw is not enforced
// (a warning is logged when exceeded). Every result carries predicted_delta_nll.
SearchResult run_search(const MeasurementTable& table, const std::string& method, double target_bpw);

// The plans a validation pass (pipeline, --validate-windows) may weigh
// against the search's own (--validate-plans): "front" and any budgeted
// search method.
inline constexpr std::array<std::string_view, 5> kValidatedPlanNames = {
    "front", "minmax", "minmax-weighted", "minsum", "minsum-unweighted"};
// The default --validate-plans.
inline constexpr std::string_view kDefaultValidatedPlans = "front,minmax";
// "front,minmax" -> {"front", "minmax"}; "" -> {}. Throws Usage naming
// --validate-plans on an unknown or repeated name.
std::vector<std::string> parse_validated_plans(const std::string& list);

// The plans a validation pass weighs against the search's own `asked` plan,
// which comes first; then, in the order of `alternatives`, each only when it
// differs from every plan before it:
//   "front": "front:<lo>+<hi>", min-sum (loss-weighted when the table has
//     sensitivities) over the two neighbouring uniform configurations (rank 0)
//     of the predicted uniform front that bracket the budget: what the
//     piecewise-linear uniform front promises, reached with small moves only.
//     "uniform:<lo>" when no front configuration above the budget exists;
//     nothing when none fits.
//   a search method (kValidatedPlanNames): run_search's plan at the budget,
//     unless that method was asked.
// Every plan fits target_bpw and carries predicted_delta_nll.
std::vector<SearchResult> plan_alternatives(const MeasurementTable& table, const SearchResult& asked,
                                            double target_bpw, const std::vector<std::string>& alternatives);
// Whether `method` spends a bit budget (not "uniform:..." or "plan:..."): only
// such searches have alternatives to validate.
bool is_budgeted_search(std::string_view method);
// The most plans plan_alternatives() returns for `method` and `alternatives`:
// 1 + the alternatives other than the method itself; 1 when not budgeted.
int max_validated_plans(std::string_view method, const std::vector<std::string>& alternatives);

// Per layer: name, spec, rank, bpw, eps; then the totals. For stdout.
std::string format_allocation(const MeasurementTable& table, const SearchResult& result);

}  // namespace amlq
