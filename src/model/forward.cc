#include "model/forward.h"

#include "core/error.h"

namespace amlq {
namespace {

// Activation buffers live on across calls: fresh multi-MiB allocations per
// layer cost more in page faults than small-model GEMMs take.
struct LayerBuffers {
  MatrixF attn_in, q, k, v, attn_out, projected, mlp_in, gate, up, mlp_out;
};
thread_local LayerBuffers buffers;

}  // namespace

const MatrixF& LayerInputs::at(InputSite site) const {
  switch (site) {
    case InputSite::AttnIn: return attn_in;
    case InputSite::AttnOut: return attn_out;
    case InputSite::MlpIn: return mlp_in;
    case InputSite::MlpOut: return mlp_out;
  }
  AMLQ_FAIL(Internal, "unknown input site {}", static_cast<int>(site));
}

void linear_forward(Backend& backend, const LinearWeights& weights, const MatrixF& x, MatrixF& y) {
  if (weights.packed) {
    backend.dequant_linear(x, *weights.packed, y);
    if (weights.packed->bias.empty() && weights.bias.size() != 0) y.rowwise() += weights.bias.transpose();
    return;
  }
  backend.linear(x, weights.dense, weights.bias, y);
}

void decoder_layer_forward(Backend& backend, const ModelConfig& config, const DecoderLayerWeights& layer,
                           const RopeTables& rope, MatrixF& hidden, int batch, int seqlen, LayerInputs* captured,
                           const LinearOutputHook* hook) {
  const Eigen::Index tokens = static_cast<Eigen::Index>(batch) * seqlen;
  AMLQ_ASSERT(hidden.rows() == tokens && hidden.cols() == config.hidden_size, "hidden is {}x{}, expected {}x{}",
              hidden.rows(), hidden.cols(), tokens, config.hidden_size);
  AMLQ_ASSERT(rope.seqlen() == seqlen, "rope tables for {} positions, sequences of {}", rope.seqlen(), seqlen);
  AMLQ_ASSERT(layer.linears.size() == 7, "decoder layer with {} linears", layer.linears.size());
  const float eps = static_cast<float>(config.rms_norm_eps);
  const int heads = config.num_heads, kv_heads = config.num_kv_heads, head_dim = config.head_dim;
  const auto& lin = layer.linears;

  LayerBuffers& buf = buffers;
  backend.rms_norm(hidden, layer.input_norm, eps, buf.attn_in);
  linear_forward(backend, lin[0], buf.attn_in, buf.q);
  if (hook) (*hook)(0, buf.attn_in, buf.q);
  linear_forward(backend, lin[1], buf.attn_in, buf.k);
  if (hook) (*hook)(1, buf.attn_in, buf.k);
  linear_forward(backend, lin[2], buf.attn_in, buf.v);
  if (hook) (*hook)(2, buf.attn_in, buf.v);
  backend.rope(buf.q, batch, seqlen, heads, head_dim, rope.cos, rope.sin);
  backend.rope(buf.k, batch, seqlen, kv_heads, head_dim, rope.cos, rope.sin);
  backend.attention(buf.q, buf.k, buf.v, batch, seqlen, heads, kv_heads, head_dim, buf.attn_out);
  linear_forward(backend, lin[3], buf.attn_out, buf.projected);
  if (hook) (*hook)(3, buf.attn_out, buf.projected);
  hidden += buf.projected;

  backend.rms_norm(hidden, layer.post_attention_norm, eps, buf.mlp_in);
  linear_forward(backend, lin[4], buf.mlp_in, buf.gate);
  if (hook) (*hook)(4, buf.mlp_in, buf.gate);
  linear_forward(backend, lin[5], buf.mlp_in, buf.up);
  if (hook) (*hook)(5, buf.mlp_in, buf.up);
  backend.swiglu(buf.gate, buf.up, buf.mlp_out);
  linear_forward(backend, lin[6], buf.mlp_out, buf.projected);
  if (hook) (*hook)(6, buf.mlp_out, buf.projected);
  hidden += buf.projected;

  if (captured) {
    // Swap rather than copy: the caller's previous capture becomes the next scratch.
    captured->attn_in.swap(buf.attn_in);
    captured->attn_out.swap(buf.attn_out);
    captured->mlp_in.swap(buf.mlp_in);
    captured->mlp_out.swap(buf.mlp_out);
  }
}

void decoder_layer_site_input(Backend& backend, const ModelConfig& config, const DecoderLayerWeights& layer,
                              const RopeTables& rope, const MatrixF& hidden, int batch, int seqlen, InputSite site,
                              MatrixF& input) {
  const Eigen::Index tokens = static_cast<Eigen::Index>(batch) * seqlen;
  AMLQ_ASSERT(hidden.rows() == tokens && hidden.cols() == config.hidden_size, "hidden is {}x{}, expected {}x{}",
              hidden.rows(), hidden.cols(), tokens, config.hidden_size);
  const float eps = static_cast<float>(config.rms_norm_eps);
  const int heads = config.num_heads, kv_heads = config.num_kv_heads, head_dim = config.head_dim;
  const auto& lin = layer.linears;
  LayerBuffers& buf = buffers;
  backend.rms_norm(hidden, layer.input_norm, eps, buf.attn_in);
  if (site == InputSite::AttnIn) {
    input.swap(buf.attn_in);
    return;
  }
  linear_forward(backend, lin[0], buf.attn_in, buf.q);
  linear_forward(backend, lin[1], buf.attn_in, buf.k);
  linear_forward(backend, lin[2], buf.attn_in, buf.v);
  backend.rope(buf.q, batch, seqlen, heads, head_dim, rope.cos, rope.sin);
  backend.rope(buf.k, batch, seqlen, kv_heads, head_dim, rope.cos, rope.sin);
  backend.attention(buf.q, buf.k, buf.v, batch, seqlen, heads, kv_heads, head_dim, buf.attn_out);
  if (site == InputSite::AttnOut) {
    input.swap(buf.attn_out);
    return;
  }
  linear_forward(backend, lin[3], buf.attn_out, buf.projected);
  MatrixF& residual = buf.mlp_out;  // scratch until mlp_out is computed
  residual = hidden + buf.projected;
  backend.rms_norm(residual, layer.post_attention_norm, eps, buf.mlp_in);
  if (site == InputSite::MlpIn) {
    input.swap(buf.mlp_in);
    return;
  }
  linear_forward(backend, lin[4], buf.mlp_in, buf.gate);
  linear_forward(backend, lin[5], buf.mlp_in, buf.up);
  backend.swiglu(buf.gate, buf.up, buf.mlp_out);
  input.swap(buf.mlp_out);
}

void release_forward_buffers() { buffers = LayerBuffers(); }

MatrixF embed(const ModelWeights& weights, std::span<const int32_t> ids) {
  AMLQ_ASSERT(weights.embedding.rows() == weights.config.vocab_size, "these weights hold no embedding");
  MatrixF out(static_cast<Eigen::Index>(ids.size()), weights.embedding.cols());
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    AMLQ_REQUIRE(id >= 0 && id < weights.config.vocab_size, "token id {} at position {} is outside the vocabulary [0, {})",
                 id, i, weights.config.vocab_size);
    out.row(static_cast<Eigen::Index>(i)) = weights.embedding.row(id);
  }
  return out;
}

void final_logits(Backend& backend, const ModelWeights& weights, const MatrixF& hidden, MatrixF& logits) {
  thread_local MatrixF normed;
  backend.rms_norm(hidden, weights.final_norm, static_cast<float>(weights.config.rms_norm_eps), normed);
  backend.linear(normed, weights.head(), VectorF(), logits);
}

void forward_layers(Backend& backend, const ModelWeights& weights, const RopeTables& rope, MatrixF& hidden, int batch,
                    int seqlen) {
  for (const auto& layer : weights.layers)
    decoder_layer_forward(backend, weights.config, layer, rope, hidden, batch, seqlen, nullptr);
}

void model_logits(Backend& backend, const ModelWeights& weights, std::span<const int32_t> ids, int batch, int seqlen,
                  MatrixF& logits) {
  AMLQ_ASSERT(ids.size() == static_cast<size_t>(batch) * seqlen, "{} ids for {} x {}", ids.size(), batch, seqlen);
  AMLQ_ASSERT(weights.first_layer == 0 && weights.end_layer() == weights.config.num_layers && weights.has_head,
              "model_logits needs the whole model");
  MatrixF hidden = embed(weights, ids);
  const RopeTables rope = make_rope_tables(weights.config, seqlen);
  forward_layers(backend, weights, rope, hidden, batch, seqlen);
  final_logits(backend, weights, hidden, logits);
}

}  // namespace amlq
