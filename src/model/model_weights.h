#pragma once
// The weights one process holds for the forward pass: all of a model, or the
// contiguous block of decoder layers an MPI rank owns (plus the embedding on
// the first stage and the head on the last).
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/matrix.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "quant/packed_linear.h"

namespace amlq {

// One linear layer: dense (out x in, row-major) or packed. When `packed` is set
// the forward pass uses Backend::dequant_linear and `dense` may be empty; the
// bias is PackedLinear::bias, or `bias` when the packed layer carries none.
struct LinearWeights {
  MatrixF dense;
  VectorF bias;  // empty: no bias
  std::shared_ptr<const PackedLinear> packed;
  int rows() const;
  int cols() const;
};

struct DecoderLayerWeights {
  VectorF input_norm;
  VectorF post_attention_norm;
  std::vector<LinearWeights> linears;  // in decoder_linears(config) order
};

struct ModelWeights {
  ModelConfig config;
  MatrixF embedding;   // vocab x hidden; empty when this process neither embeds nor has a tied head
  VectorF final_norm;  // empty without the head
  MatrixF lm_head;     // vocab x hidden; empty when tied (the embedding is the head) or without the head
  std::vector<DecoderLayerWeights> layers;  // decoder layers [first_layer, first_layer + layers.size())
  int first_layer = 0;
  bool has_head = false;

  // The matrix logits are computed with: lm_head, or the embedding when tied.
  const MatrixF& head() const;
  int end_layer() const { return first_layer + static_cast<int>(layers.size()); }
};

// Reads decoder layers [first_layer, end_layer) and optionally the embedding
// and the head (final norm + lm_head, or the embedding when tied). Tensors are
// converted to float32 from F32/F16/BF16. A missing tensor or a shape that
// disagrees with config.json is an Input error naming the file and the tensor.
ModelWeights load_model_weights(const Checkpoint& checkpoint, const ModelConfig& config, int first_layer,
                                int end_layer, bool with_embedding, bool with_head);
// Embedding rows of `ids` read straight from the (mmapped) checkpoint: only the
// rows used are converted, so a pipeline stage never holds a float32 copy of the
// whole embedding. Ids outside the vocabulary: Input error.
MatrixF embed_from_checkpoint(const Checkpoint& checkpoint, const ModelConfig& config, std::span<const int32_t> ids);

// Everything: MODEL_DIR/config.json + its safetensors.
ModelWeights load_model_weights(const std::string& model_dir);

// The inputs of one decoder layer read from a checkpoint (used to rebuild a
// layer, e.g. for the dense reference of a quantized one).
DecoderLayerWeights load_decoder_layer(const Checkpoint& checkpoint, const ModelConfig& config, int layer);

// An amlq .h5 model as ModelWeights: packed linears plus the passthrough
// tensors (embedding, norms, head). Hook for the HDF5 reader (quantized_model_weights.cc).
ModelWeights load_quantized_model_weights(const std::string& h5_path);

}  // namespace amlq
