#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "lowrank/decompose.h"
#include "model/model_weights.h"
#include "pipeline/stages.h"
#include "quant/error.h"
#include "quant/pack.h"
#include "quant/quantizer.h"

namespace amlq {

PackedLinear pack_linear_choice(Backend& backend, const QuantizeOptions& options, const std::string& name,
                                const MatrixF& w, const VectorF& bias, const SiteStatistics& stats,
                                const Candidate& choice) {
  GptqOptions gptq = options.gptq;
  gptq.error_feedback = !options.rtn;
  const QuantizedMatrix q = backend.quantize(w, stats.hessian, choice.spec, gptq);
  PackedLinear packed;
  if (choice.rank > 0) {
    const MatrixF w_hat = dequantize(q);
    const LowRankDecomposition decomposition =
        decompose_error(backend, w, w_hat, stats.hessian, stats.act_scale, options.lowrank, choice.rank);
    const LowRankFactors factors = decomposition.factors(choice.rank, options.factor_format);
    packed = pack_linear(name, q, &factors, options.lowrank);
  } else {
    packed = pack_linear(name, q, nullptr, LowRankMethod::None);
  }
  packed.bias.assign(bias.data(), bias.data() + bias.size());
  // The error of what is stored: fp16 scales and rounded factors included.
  packed.eps = normalized_error(w, dequantize(packed, true), stats.hessian);
  return packed;
}

std::vector<PackedLinear> pack_layers(Backend& backend, const QuantizeOptions& options, const ModelConfig& config,
                                      const Checkpoint& checkpoint, const CalibrationStats& stats,
                                      const MeasurementTable& table, const SearchResult& plan, LayerRange layers) {
  const auto linears = decoder_linears(config);
  std::vector<PackedLinear> out;
  const int total = layers.size() * static_cast<int>(linears.size());
  for (int layer = layers.first; layer < layers.end; ++layer) {
    const auto it = std::find_if(stats.layers.begin(), stats.layers.end(),
                                 [&](const LayerCalibration& l) { return l.layer == layer; });
    AMLQ_REQUIRE(it != stats.layers.end(), "calibration statistics have no layer {}", layer);
    const DecoderLayerWeights weights = load_decoder_layer(checkpoint, config, layer);
    for (size_t j = 0; j < linears.size(); ++j) {
      const std::string name = linear_name(layer, linears[j].name);
      const auto row = std::find_if(table.begin(), table.end(), [&](const LayerMeasurement& m) { return m.name == name; });
      AMLQ_REQUIRE(row != table.end(), "measurement table has no row for {}", name);
      const size_t index = static_cast<size_t>(row - table.begin());
      const Candidate& choice = row->candidates.at(static_cast<size_t>(plan.choice.at(index)));
      Timer timer;
      out.push_back(pack_linear_choice(backend, options, name, weights.linears[j].dense, weights.linears[j].bias,
                                       it->site(linears[j].input), choice));
      AMLQ_LOG_INFO("[{}/{}] {} {} r{} bpw={:.3f} eps={:.2e} {:.2f}s", out.size(), total, name, choice.spec.label(),
                    choice.rank, out.back().bpw, out.back().eps, timer.seconds());
    }
  }
  return out;
}

std::vector<PassthroughTensor> passthrough_tensors(const Checkpoint& checkpoint, const ModelConfig& config) {
  std::set<std::string> quantized;
  for (int layer = 0; layer < config.num_layers; ++layer)
    for (const auto& l : decoder_linears(config)) {
      quantized.insert(linear_weight_name(layer, l.name));
      quantized.insert(linear_bias_name(layer, l.name));
    }
  std::vector<PassthroughTensor> out;
  for (const auto& name : checkpoint.names()) {
    if (quantized.count(name)) continue;
    const auto& info = checkpoint.info(name);
    const auto raw = checkpoint.raw(name);
    PassthroughTensor t;
    t.name = name;
    t.dtype = info.dtype;
    t.shape = info.shape;
    t.data.assign(raw.begin(), raw.end());
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace amlq
