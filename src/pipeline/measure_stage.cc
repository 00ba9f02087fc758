#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "lowrank/decompose.h"
#include "model/model_weights.h"
#include "pipeline/stages.h"
#include "quant/cost_model.h"
#include "quant/error.h"
#include "quant/quantizer.h"

namespace amlq {

std::string linear_name(int layer, const std::string& linear) {
  return fmt::format("model.layers.{}.{}", layer, linear);
}

void measure_linear(Backend& backend, const QuantizeOptions& options, const std::string& name, const MatrixF& w,
                    const SiteStatistics& stats, const QuantSpec& spec, const std::vector<int>& ranks,
                    std::vector<Candidate>& out) {
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
  if (lowrank)
    decomposition.emplace(
        decompose_error(backend, w, w_hat, stats.hessian, stats.act_scale, options.lowrank, max_rank));
  const double eps0 = normalized_error(w, w_hat, stats.hessian);
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

MeasurementTable measure_layers(Backend& backend, const QuantizeOptions& options, const ModelConfig& config,
                                const Checkpoint& checkpoint, const CalibrationStats& stats, const RecipeSpace& space,
                                LayerRange layers) {
  const auto linears = decoder_linears(config);
  MeasurementTable table;
  const int total = layers.size() * static_cast<int>(linears.size());
  int done = 0;
  for (int layer = layers.first; layer < layers.end; ++layer) {
    const auto it = std::find_if(stats.layers.begin(), stats.layers.end(),
                                 [&](const LayerCalibration& l) { return l.layer == layer; });
    AMLQ_REQUIRE(it != stats.layers.end(), "calibration statistics have no layer {}", layer);
    const DecoderLayerWeights weights = load_decoder_layer(checkpoint, config, layer);
    for (size_t j = 0; j < linears.size(); ++j) {
      const auto& spec = linears[j];
      LayerMeasurement row;
      row.name = linear_name(layer, spec.name);
      row.rows = spec.rows;
      row.cols = spec.cols;
      Timer timer;
      const auto specs = space.applicable_specs(spec.rows, spec.cols, row.name);
      for (const auto& s : specs)
        measure_linear(backend, options, row.name, weights.linears[j].dense, it->site(spec.input), s, space.ranks,
                       row.candidates);
      ++done;
      const auto best = std::min_element(row.candidates.begin(), row.candidates.end(),
                                         [](const Candidate& a, const Candidate& b) { return a.eps < b.eps; });
      AMLQ_LOG_INFO("[{}/{}] {} {} specs x {} ranks -> {} candidates, best eps={:.2e} {:.2f}s", done, total, row.name,
                    specs.size(), space.ranks.size(), row.candidates.size(), best->eps, timer.seconds());
      table.push_back(std::move(row));
    }
  }
  return table;
}

}  // namespace amlq
