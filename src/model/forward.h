#pragma once
// The Llama-family forward pass as pure functions over a Backend, one decoder
// layer at a time, so a pipeline stage can run just the layers it owns.
// Activations hold `batch` sequences of `seqlen` tokens as consecutive rows
// (row = b * seqlen + t); every sequence starts at position 0.
#include <cstdint>
#include <functional>
#include <span>

#include "backend/backend.h"
#include "core/matrix.h"
#include "io/model_config.h"
#include "model/model_weights.h"
#include "model/rope.h"

namespace amlq {

// What the linears of one decoder layer saw: the calibration hooks. q/k/v share
// attn_in (the normed hidden state), gate/up share mlp_in; attn_out feeds o_proj,
// mlp_out (silu(gate) * up) feeds down_proj. Each is tokens x input features.
struct LayerInputs {
  MatrixF attn_in, attn_out, mlp_in, mlp_out;
  const MatrixF& at(InputSite site) const;
};

// y = x W^T + bias, dense or packed (LinearWeights).
void linear_forward(Backend& backend, const LinearWeights& weights, const MatrixF& x, MatrixF& y);

// Called with each linear's input and output (index in decoder_linears order)
// before the output is used; it may change the output. The loss-sensitivity
// probes inject noise this way.
using LinearOutputHook = std::function<void(int linear, const MatrixF& input, MatrixF& output)>;

// hidden ((batch*seqlen) x hidden_size) <- decoder layer(hidden). rope must have
// exactly seqlen rows (make_rope_tables(config, seqlen)). With `captured`, the
// four input sites are stored there (moved, no copies).
void decoder_layer_forward(Backend& backend, const ModelConfig& config, const DecoderLayerWeights& layer,
                           const RopeTables& rope, MatrixF& hidden, int batch, int seqlen, LayerInputs* captured,
                           const LinearOutputHook* hook = nullptr);

// The input of one site (attn_in, attn_out, mlp_in or mlp_out) of the layer for
// `hidden`, computing only as much of the layer as that needs; hidden is not
// changed. For true-sequential GPTQ, where a site's input must be recomputed
// through the already quantized linears before it.
void decoder_layer_site_input(Backend& backend, const ModelConfig& config, const DecoderLayerWeights& layer,
                              const RopeTables& rope, const MatrixF& hidden, int batch, int seqlen, InputSite site,
                              MatrixF& input);

// decoder_layer_forward keeps its activation buffers (per thread) between
// calls; this frees them, e.g. before a memory-hungry step.
void release_forward_buffers();

// Embedding rows of ids (ids.size() x hidden_size). Ids outside the vocabulary: Input error.
MatrixF embed(const ModelWeights& weights, std::span<const int32_t> ids);

// logits (tokens x vocab) = head(final_norm(hidden)).
void final_logits(Backend& backend, const ModelWeights& weights, const MatrixF& hidden, MatrixF& logits);

// Runs all decoder layers the weights hold over hidden, in place.
void forward_layers(Backend& backend, const ModelWeights& weights, const RopeTables& rope, MatrixF& hidden,
                    int batch, int seqlen);

// ids: batch sequences of seqlen ids, concatenated. Needs embedding, all layers and the head.
void model_logits(Backend& backend, const ModelWeights& weights, std::span<const int32_t> ids, int batch, int seqlen,
                  MatrixF& logits);

}  // namespace amlq
