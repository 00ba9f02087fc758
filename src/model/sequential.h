#pragma once
// Layer-by-layer ("true-sequential") calibration: all samples pass through
// layer i, its statistics are gathered, a callback may replace the layer (e.g.
// by its quantized version), and layer i+1 then sees the replaced layer's
// outputs. Hidden states of every sample stay in memory (calibration is small).
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "backend/backend.h"
#include "model/forward.h"
#include "model/layer_statistics.h"
#include "model/model_weights.h"

namespace amlq {

struct SequentialOptions {
  int batch = 8;               // sequences per forward batch
  int samples_per_block = 8;   // HessianAccumulator block (results do not depend on `batch`)
  int64_t first_sample = 0;    // global index of this process's first sample (data-parallel replicas)
};

// Called once per layer with its finished statistics. `layer` is the model's
// layer index. A returned DecoderLayerWeights replaces the layer.
using LayerCallback = std::function<std::optional<DecoderLayerWeights>(int layer, LayerStatistics& stats)>;

// num_samples sequences of seqlen ids -> (num_samples*seqlen) x hidden embeddings.
MatrixF embed_samples(const ModelWeights& weights, const std::vector<std::vector<int32_t>>& samples);

// One layer over all samples: outputs = layer(inputs), in batches; statistics
// of its inputs are added to *stats when non-null (not finished).
void run_layer_over_samples(Backend& backend, const ModelConfig& config, const DecoderLayerWeights& layer,
                            const RopeTables& rope, const MatrixF& inputs, int num_samples, int seqlen,
                            const SequentialOptions& options, LayerStatistics* stats, MatrixF& outputs);

// For every layer the weights hold, in order: statistics, callback, and on a
// replacement weights.layers[i] = replacement with the outputs recomputed.
// hidden: (num_samples*seqlen) x hidden_size, the first layer's inputs; on
// return, the last layer's outputs (what the next pipeline stage receives).
void run_sequential(Backend& backend, ModelWeights& weights, MatrixF& hidden, int num_samples, int seqlen,
                    const SequentialOptions& options, const LayerCallback& callback);

}  // namespace amlq
