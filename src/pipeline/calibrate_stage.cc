#include <fmt/format.h>

#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "model/layer_statistics.h"
#include "model/model_weights.h"
#include "model/sequential.h"
#include "quant/pack.h"
#include "quant/quantizer.h"
#include "pipeline/stages.h"

namespace amlq {

namespace {

LayerCalibration finish_statistics(int layer, LayerStatistics& stats) {
  stats.finish();
  LayerCalibration out;
  out.layer = layer;
  for (int s = 0; s < kNumInputSites; ++s) {
    const auto& acc = stats.per_site[static_cast<size_t>(s)];
    auto& site = out.sites[static_cast<size_t>(s)];
    site.hessian = acc.hessian();
    site.act_scale = acc.act_scale();
    site.tokens = acc.tokens();
  }
  return out;
}

// The layer as the next one will see it in a true-sequential run: every linear
// quantized with one fixed spec (the final per-layer choice is not known yet).
DecoderLayerWeights quantized_replacement(Backend& backend, const QuantizeOptions& options,
                                          const ModelConfig& config, const DecoderLayerWeights& layer,
                                          const LayerCalibration& calibration) {
  DecoderLayerWeights out = layer;
  const auto linears = decoder_linears(config);
  const QuantSpec spec = QuantSpec::parse(options.sequential_spec);
  GptqOptions gptq = options.gptq;
  gptq.error_feedback = !options.rtn;
  for (size_t j = 0; j < linears.size(); ++j) {
    const auto& site = calibration.site(linears[j].input);
    spec.validate(linears[j].rows, linears[j].cols, linears[j].name);
    const QuantizedMatrix q = backend.quantize(layer.linears[j].dense, site.hessian, spec, gptq);
    out.linears[j].dense = dequantize(q);
  }
  return out;
}

}  // namespace

std::vector<LayerCalibration> calibrate_layers(Backend& backend, const QuantizeOptions& options,
                                               ModelWeights& weights, MatrixF& hidden, int num_samples,
                                               int64_t first_sample) {
  std::vector<LayerCalibration> result;
  SequentialOptions seq;
  seq.batch = options.batch;
  seq.samples_per_block = options.samples_per_block;
  seq.first_sample = first_sample;
  const int total = static_cast<int>(weights.layers.size());
  Timer timer;
  auto callback = [&](int layer, LayerStatistics& stats) -> std::optional<DecoderLayerWeights> {
    result.push_back(finish_statistics(layer, stats));
    AMLQ_LOG_INFO("[{}/{}] calibrated layer {} ({} tokens) {:.1f}s", layer - weights.first_layer + 1, total, layer,
                  result.back().sites[0].tokens, timer.seconds());
    if (!options.sequential) return std::nullopt;
    return quantized_replacement(backend, options, weights.config,
                                 weights.layers[static_cast<size_t>(layer - weights.first_layer)], result.back());
  };
  run_sequential(backend, weights, hidden, num_samples, options.calib_spec.seqlen, seq, callback);
  return result;
}

}  // namespace amlq
