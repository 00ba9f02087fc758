#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <fmt/ranges.h>

#include "core/error.h"
#include "core/log.h"
#include "core/parallel.h"
#include "core/timer.h"
#include "lowrank/decompose.h"
#include "model/model_weights.h"
#include "pipeline/stages.h"
#include "quant/cost_model.h"
#include "quant/error.h"
#include "quant/quantizer.h"

namespace amlq {

void measure_linear(Backend& backend, const QuantizeOptions& options, const std::string& name, const MatrixF& w,
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

std::vector<LinearTask> linear_tasks(const ModelConfig& config, LayerBlock layers) {
  std::vector<LinearTask> tasks;
  const auto linears = decoder_linears(config);
  for (int layer = layers.first; layer < layers.end; ++layer)
    for (size_t j = 0; j < linears.size(); ++j)
      tasks.push_back({layer, static_cast<int>(j), layer_tensor_name(layer, linears[j].name)});
  return tasks;
}

MatrixF read_linear_weight(const Checkpoint& checkpoint, const LinearSpec& spec, int layer) {
  const std::string name = linear_weight_name(layer, spec.name);
  const TensorF32 t = checkpoint.read_f32(name);
  if (t.shape != std::vector<int64_t>{spec.rows, spec.cols})
    AMLQ_FAIL(Input, "{}: tensor '{}' has shape [{}], config.json implies [{}, {}]", checkpoint.file_of(name), name,
              fmt::join(t.shape, ", "), spec.rows, spec.cols);
  return Eigen::Map<const MatrixF>(t.data.data(), spec.rows, spec.cols);
}

}  // namespace amlq
