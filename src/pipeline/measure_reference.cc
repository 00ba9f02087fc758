// The measure path before shared site factorizations (issue 13), kept as the
// oracle that tests and bench/measure compare measure_site against: every spec
// runs its own GPTQ (own factorization), tr(E H E^T) is an m x n x n product
// with H, and the low-rank errors come from decompose_error (its own Cholesky
// and a full eigendecomposition of the error's Gram matrix).
#include <algorithm>
#include <optional>

#include "lowrank/decompose.h"
#include "pipeline/measure_site.h"
#include "quant/cost_model.h"
#include "quant/error.h"
#include "quant/quantizer.h"

namespace amlq {
namespace {

void measure_spec_reference(Backend& backend, const QuantizeOptions& options, const MatrixF& w,
                            const SiteStatistics& stats, double weight_norm_h, const QuantSpec& spec,
                            const std::vector<int>& ranks, std::vector<Candidate>& out) {
  const int rows = static_cast<int>(w.rows());
  const int cols = static_cast<int>(w.cols());
  GptqOptions gptq = options.gptq;
  gptq.error_feedback = !options.rtn;
  const QuantizedMatrix q = backend.quantize(w, stats.hessian, spec, gptq);
  const MatrixF w_hat = dequantize(q);

  int max_rank = 0;
  for (int r : ranks)
    if (r <= std::min(rows, cols)) max_rank = std::max(max_rank, r);
  const bool lowrank = options.lowrank != LowRankMethod::None && max_rank > 0;
  std::optional<LowRankDecomposition> decomposition;
  LowRankOptions lowrank_options;
  lowrank_options.damp = options.gptq.damp;
  lowrank_options.weight_norm_h = weight_norm_h;
  if (lowrank)
    decomposition.emplace(decompose_error(backend, w, w_hat, stats.hessian, stats.act_scale, options.lowrank,
                                          max_rank, lowrank_options));
  const MatrixF error = w - w_hat;
  const double eps0 = normalize_error(weighted_sq_norm(error, stats.hessian), weight_norm_h);
  for (int r : ranks) {
    if (r > std::min(rows, cols)) continue;
    if (r > 0 && !lowrank) continue;
    Candidate c;
    c.spec = spec;
    c.rank = r;
    c.bpw = bits_per_weight(spec, rows, cols, r, options.factor_format);
    c.eps = r == 0 ? eps0 : decomposition->eps_at(r);
    out.push_back(c);
  }
}

}  // namespace

LayerMeasurement measure_linear_reference(Backend& backend, const QuantizeOptions& options, const std::string& name,
                                          const MatrixF& w, const SiteStatistics& stats, const RecipeSpace& space) {
  LayerMeasurement row;
  row.name = name;
  row.rows = static_cast<int>(w.rows());
  row.cols = static_cast<int>(w.cols());
  const double weight_norm_h = weighted_sq_norm(w, stats.hessian);
  for (const auto& s : space.applicable_specs(row.rows, row.cols, name))
    measure_spec_reference(backend, options, w, stats, weight_norm_h, s, space.ranks, row.candidates);
  return row;
}

}  // namespace amlq
