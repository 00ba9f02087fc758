#include "model/sequential.h"

#include <algorithm>

#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"

namespace amlq {

MatrixF embed_samples(const ModelWeights& weights, const std::vector<std::vector<int32_t>>& samples) {
  AMLQ_ASSERT(!samples.empty(), "no calibration samples");
  const size_t seqlen = samples.front().size();
  std::vector<int32_t> ids;
  ids.reserve(samples.size() * seqlen);
  for (const auto& s : samples) {
    AMLQ_ASSERT(s.size() == seqlen, "calibration samples of {} and {} tokens", seqlen, s.size());
    ids.insert(ids.end(), s.begin(), s.end());
  }
  return embed(weights, ids);
}

void run_layer_over_samples(Backend& backend, const ModelConfig& config, const DecoderLayerWeights& layer,
                            const RopeTables& rope, const MatrixF& inputs, int num_samples, int seqlen,
                            const SequentialOptions& options, LayerStatistics* stats, MatrixF& outputs) {
  const Eigen::Index tokens = static_cast<Eigen::Index>(num_samples) * seqlen;
  AMLQ_ASSERT(inputs.rows() == tokens, "{} rows for {} samples of {}", inputs.rows(), num_samples, seqlen);
  AMLQ_ASSERT(&inputs != &outputs, "run_layer_over_samples: outputs alias inputs");
  AMLQ_ASSERT(options.batch > 0, "batch {}", options.batch);
  outputs.resize(tokens, inputs.cols());
  MatrixF hidden;
  LayerInputs captured;
  for (int s0 = 0; s0 < num_samples; s0 += options.batch) {
    const int n = std::min(options.batch, num_samples - s0);
    const Eigen::Index r0 = static_cast<Eigen::Index>(s0) * seqlen, rows = static_cast<Eigen::Index>(n) * seqlen;
    hidden = inputs.middleRows(r0, rows);
    decoder_layer_forward(backend, config, layer, rope, hidden, n, seqlen, stats ? &captured : nullptr);
    if (stats) accumulate_layer_statistics(backend, captured, options.first_sample + s0, n, *stats);
    outputs.middleRows(r0, rows) = hidden;
  }
}

void run_sequential(Backend& backend, ModelWeights& weights, MatrixF& hidden, int num_samples, int seqlen,
                    const SequentialOptions& options, const LayerCallback& callback) {
  const RopeTables rope = make_rope_tables(weights.config, seqlen);
  MatrixF outputs;
  const int count = static_cast<int>(weights.layers.size());
  for (int i = 0; i < count; ++i) {
    const int layer = weights.first_layer + i;
    Timer timer;
    LayerStatistics stats(weights.config, options.samples_per_block);
    run_layer_over_samples(backend, weights.config, weights.layers[i], rope, hidden, num_samples, seqlen, options,
                           &stats, outputs);
    stats.finish();
    const double forward_s = timer.seconds();
    std::optional<DecoderLayerWeights> replacement = callback ? callback(layer, stats) : std::nullopt;
    if (replacement) {
      weights.layers[i] = std::move(*replacement);
      run_layer_over_samples(backend, weights.config, weights.layers[i], rope, hidden, num_samples, seqlen, options,
                             nullptr, outputs);
    }
    std::swap(hidden, outputs);
    AMLQ_LOG_INFO("[{}/{}] layer {}: {} samples x {} tokens, statistics {:.1f}s, total {:.1f}s{}", i + 1, count, layer,
                  num_samples, seqlen, forward_s, timer.seconds(), replacement ? " (replaced)" : "");
  }
}

}  // namespace amlq
