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
                                const Candidate& choice) {
  GptqOptions gptq = options.gptq;
  gptq.error_feedback = !options.rtn;
  const QuantizedMatrix q = backend.quantize(w, stats.hessian, choice.spec, gptq);
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

std::vector<PackedLinear> pack_linears(Backend& backend, const QuantizeOptions& options, const ModelConfig& config,
                                       const Checkpoint& checkpoint, const CalibrationStats& stats,
                                       const std::vector<LinearTask>& tasks, const std::vector<Candidate>& choices) {
  AMLQ_ASSERT(tasks.size() == choices.size(), "{} tasks, {} choices", tasks.size(), choices.size());
  const auto linears = decoder_linears(config);
  std::vector<PackedLinear> out(tasks.size());
  std::atomic<int> done{0};
  parallel_for(static_cast<int>(tasks.size()), options.threads, [&](int i) {
    const LinearTask& task = tasks[static_cast<size_t>(i)];
    const LinearSpec& spec = linears[static_cast<size_t>(task.index)];
    const Candidate& choice = choices[static_cast<size_t>(i)];
    const MatrixF w = read_linear_weight(checkpoint, spec, task.layer);
    VectorF bias;
    if (spec.has_bias) {
      const TensorF32 b = checkpoint.read_f32(linear_bias_name(task.layer, spec.name));
      bias = Eigen::Map<const VectorF>(b.data.data(), static_cast<Eigen::Index>(b.data.size()));
    }
    Timer timer;
    PackedLinear& packed = out[static_cast<size_t>(i)];
    packed = pack_linear_choice(backend, options, task.name, w, bias,
                                layer_statistics(stats, task.layer).site(spec.input), choice);
    AMLQ_LOG_INFO("[{}/{}] {} {} r{} bpw={:.3f} eps={:.2e} {:.2f}s", ++done, tasks.size(), task.name,
                  choice.spec.label(), choice.rank, packed.bpw, packed.eps, timer.seconds());
  });
  return out;
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
