#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <set>

#include "core/error.h"
#include "core/log.h"
#include "core/parallel.h"
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
                                const Candidate& choice, const SiteFactor* factor) {
  GptqOptions gptq = options.gptq;
  gptq.error_feedback = !options.rtn;
  const QuantizedMatrix q = factor ? backend.quantize(w, *factor, choice.spec, gptq)
                                   : backend.quantize(w, stats.hessian, choice.spec, gptq);
  PackedLinear packed;
  if (choice.rank > 0) {
    const MatrixF w_hat = dequantize(q);
    LowRankOptions lowrank_options;
    lowrank_options.damp = options.gptq.damp;
    const LowRankDecomposition decomposition = decompose_error(backend, w, w_hat, stats.hessian, stats.act_scale,
                                                               options.lowrank, choice.rank, lowrank_options);
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

std::vector<std::string> passthrough_names(const Checkpoint& checkpoint, const ModelConfig& config) {
  std::set<std::string> quantized;
  for (int layer = 0; layer < config.num_layers; ++layer)
    for (const auto& l : decoder_linears(config)) {
      quantized.insert(linear_weight_name(layer, l.name));
      quantized.insert(linear_bias_name(layer, l.name));
    }
  std::vector<std::string> out;
  for (const auto& name : checkpoint.names())
    if (!quantized.count(name)) out.push_back(name);
  return out;
}

std::vector<PassthroughTensor> passthrough_tensors(const Checkpoint& checkpoint, const ModelConfig& config,
                                                   const std::function<bool(const std::string&)>& wanted) {
  std::vector<PassthroughTensor> out;
  for (const auto& name : passthrough_names(checkpoint, config)) {
    if (!wanted(name)) continue;
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
