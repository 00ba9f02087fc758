#pragma once
// The measure work of one input site of one decoder layer: q/k/v share the
// attention input's Hessian, gate/up the MLP input's, o and down have their
// own. The site's damped Hessian is factored once (one factor per column order
// the recipe space asks for: act-order or not) and every spec of every linear
// reading the site is measured against that shared factor; the caller may free
// the site's statistics as soon as this returns.
//
// Work is spread over options.threads threads, one (linear, spec) pair at a
// time; the threads share the site's factors (read-only) and each linear's
// weight (and row sample).
//
// Memory, in bytes, for a site with n inputs and linears of m_i x n
// (s_i = rows measured = ceil(measure_rows * m_i), n'_i = min(s_i, n),
// k = the largest rank, T = threads, F = distinct column orders, usually 1):
//   factors:      8 n^2 F   (one U per order; the caller's Hessian, 8 n^2, is not copied)
//   per linear:   4 s_i n   (its row sample, only when measure_rows < 1)
//   per thread:   9 s n + 8 n'^2 + 8 n' (n'/2 + 1.25 k) + 8 (s + 2n) k
//                 for the largest s x n being measured (lowrank/spec_errors.h;
//                 the Krylov term is a worst case, usually ~8 n' * 8k)
// e.g. Llama-2-70B's down_proj site (m = 8192, n = 28672, 1 order, k = 128):
// 6.6 GB of factor + per thread 2.1 GB (s = m) or 0.6 GB (measure_rows 0.25).
#include <string>
#include <vector>

#include "backend/backend.h"
#include "pipeline/calibration_stats.h"
#include "pipeline/quantize_options.h"
#include "search/measurement.h"
#include "search/recipe_space.h"

namespace amlq {

struct SiteLinear {
  std::string name;                 // "model.layers.3.self_attn.q_proj"
  const MatrixF* weight = nullptr;  // rows x cols (cols = the site's width)
};

// Every candidate (spec x rank of `space`) of every linear in `linears`, all
// reading the site whose statistics are `stats`. Rows in `linears` order;
// candidates spec by spec (space.applicable_specs order), rank by rank
// (space.ranks order; ranks above min(rows, cols), and ranks > 0 without a
// low-rank method, are skipped). Results do not depend on options.threads.
std::vector<LayerMeasurement> measure_site(Backend& backend, const QuantizeOptions& options,
                                           const SiteStatistics& stats, const std::vector<SiteLinear>& linears,
                                           const RecipeSpace& space);

// The measure path before shared factorizations (every spec factors H again,
// tr(E H E^T) from H, low-rank errors from decompose_error), one linear, full
// rows, single thread: the oracle tests and bench/measure compare against.
LayerMeasurement measure_linear_reference(Backend& backend, const QuantizeOptions& options, const std::string& name,
                                          const MatrixF& w, const SiteStatistics& stats, const RecipeSpace& space);

// The output rows a linear is measured on: all of them when fraction >= 1,
// else max(ceil(fraction * rows), min_rows) distinct rows (all of them when
// that is every row) chosen by a generator seeded from the linear's name (the
// same rows in every run, on every rank), ascending. The floor exists because
// a small sample estimates eps badly: on stories260K's linears (16-43 rows at
// 0.25) the standard error reached 52% of eps and the low-rank terms were
// biased low, which moved minsum's plan (+20% perplexity).
std::vector<int> measured_rows(const std::string& name, int rows, double fraction, int min_rows = 1);
// How many rows that is (rows when all): what the memory and time models charge.
int64_t measured_row_count(int64_t rows, double fraction, int min_rows);

}  // namespace amlq
