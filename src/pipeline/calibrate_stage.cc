#include <fmt/format.h>

#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "model/forward.h"
#include "model/layer_statistics.h"
#include "model/model_weights.h"
#include "model/rope.h"
#include "model/sequential.h"
#include "pipeline/distributed.h"
#include "pipeline/stages.h"
#include "quant/quantizer.h"

namespace amlq {

namespace {

LayerCalibration to_calibration(int layer, const LayerStatistics& stats) {
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

std::vector<int32_t> micro_batch_ids(const std::vector<std::vector<int32_t>>& samples, int first, int count) {
  std::vector<int32_t> ids;
  for (int s = first; s < first + count; ++s)
    ids.insert(ids.end(), samples[static_cast<size_t>(s)].begin(), samples[static_cast<size_t>(s)].end());
  return ids;
}

constexpr int kHiddenTag = 100;

}  // namespace

std::vector<LayerCalibration> calibrate_stage(Backend& backend, const QuantizeOptions& options, const Topology& topo,
                                              const Communicator& world, const Communicator& stage_replicas,
                                              ModelWeights& weights, const std::vector<std::vector<int32_t>>& samples,
                                              int64_t first_sample) {
  const ModelConfig& config = weights.config;
  const int seqlen = options.calib_spec.seqlen;
  const int num_samples = static_cast<int>(samples.size());
  const int batch = options.batch;
  const int micro_batches = (num_samples + batch - 1) / batch;
  const int prev = topo.first_stage() ? -1 : topo.rank_of(topo.replica, topo.stage - 1);
  const int next = topo.last_stage() ? -1 : topo.rank_of(topo.replica, topo.stage + 1);
  auto input_of = [&](int mb) {
    const int s0 = mb * batch, n = std::min(batch, num_samples - s0);
    return prev < 0 ? embed(weights, micro_batch_ids(samples, s0, n)) : recv_matrix(world, prev, kHiddenTag + mb);
  };
  SequentialOptions seq;
  seq.batch = batch;
  seq.samples_per_block = options.samples_per_block;
  seq.first_sample = first_sample;
  std::vector<LayerCalibration> result;
  Timer timer;

  if (options.sequential) {
    // Layer i must be quantized before any sample enters layer i+1, so this
    // stage takes all its samples before starting and sends them on at the end.
    std::vector<MatrixF> parts;
    Eigen::Index rows = 0;
    for (int mb = 0; mb < micro_batches; ++mb) {
      parts.push_back(input_of(mb));
      rows += parts.back().rows();
    }
    MatrixF hidden(rows, config.hidden_size);
    rows = 0;
    for (auto& p : parts) {
      hidden.middleRows(rows, p.rows()) = p;
      rows += p.rows();
    }
    parts.clear();
    auto callback = [&](int layer, LayerStatistics& stats) -> std::optional<DecoderLayerWeights> {
      merge_replica_statistics(stage_replicas, stats);
      result.push_back(to_calibration(layer, stats));
      return quantized_replacement(backend, options, config,
                                   weights.layers[static_cast<size_t>(layer - weights.first_layer)], result.back());
    };
    run_sequential(backend, weights, hidden, num_samples, seqlen, seq, callback);
    if (next >= 0)
      for (int mb = 0; mb < micro_batches; ++mb) {
        const int s0 = mb * batch, n = std::min(batch, num_samples - s0);
        send_matrix(world, hidden.middleRows(static_cast<Eigen::Index>(s0) * seqlen, static_cast<Eigen::Index>(n) * seqlen),
                    next, kHiddenTag + mb);
      }
    return result;
  }

  // Micro-batches flow through this stage's layers and on to the next stage
  // while this one starts the following micro-batch: the stages work concurrently.
  const RopeTables rope = make_rope_tables(config, seqlen);
  std::vector<LayerStatistics> stats;
  for (size_t i = 0; i < weights.layers.size(); ++i) stats.emplace_back(config, options.samples_per_block);
  MatrixF outputs;
  for (int mb = 0; mb < micro_batches; ++mb) {
    const int s0 = mb * batch, n = std::min(batch, num_samples - s0);
    MatrixF hidden = input_of(mb);
    SequentialOptions mb_options = seq;
    mb_options.first_sample = first_sample + s0;
    for (size_t i = 0; i < weights.layers.size(); ++i) {
      run_layer_over_samples(backend, config, weights.layers[i], rope, hidden, n, seqlen, mb_options, &stats[i],
                             outputs);
      std::swap(hidden, outputs);
    }
    if (next >= 0) send_matrix(world, hidden, next, kHiddenTag + mb);
    AMLQ_LOG_INFO("[{}/{}] calibration micro-batch of {} samples through layers {}..{} {:.1f}s", mb + 1,
                  micro_batches, n, weights.first_layer, weights.end_layer() - 1, timer.seconds());
  }
  for (size_t i = 0; i < weights.layers.size(); ++i) {
    stats[i].finish();
    merge_replica_statistics(stage_replicas, stats[i]);
    result.push_back(to_calibration(weights.first_layer + static_cast<int>(i), stats[i]));
  }
  return result;
}

}  // namespace amlq
