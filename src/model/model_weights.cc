#include "model/model_weights.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"

namespace amlq {
namespace {

TensorF32 read_checked(const Checkpoint& ckpt, const std::string& name, std::vector<int64_t> expected) {
  if (!ckpt.has(name)) AMLQ_FAIL(Input, "{}: tensor '{}' is missing", ckpt.path(), name);
  const auto& shape = ckpt.info(name).shape;
  if (shape != expected)
    AMLQ_FAIL(Input, "{}: tensor '{}' has shape [{}], config.json implies [{}]", ckpt.file_of(name), name,
              fmt::join(shape, ", "), fmt::join(expected, ", "));
  return ckpt.read_f32(name);
}

MatrixF read_matrix(const Checkpoint& ckpt, const std::string& name, int rows, int cols) {
  TensorF32 t = read_checked(ckpt, name, {rows, cols});
  return Eigen::Map<const MatrixF>(t.data.data(), rows, cols);
}

VectorF read_vector(const Checkpoint& ckpt, const std::string& name, int size) {
  TensorF32 t = read_checked(ckpt, name, {size});
  return Eigen::Map<const VectorF>(t.data.data(), size);
}

}  // namespace

int LinearWeights::rows() const { return packed ? packed->rows : static_cast<int>(dense.rows()); }
int LinearWeights::cols() const { return packed ? packed->cols : static_cast<int>(dense.cols()); }

const MatrixF& ModelWeights::head() const {
  AMLQ_ASSERT(has_head, "these weights hold no output head");
  return config.tie_word_embeddings ? embedding : lm_head;
}

DecoderLayerWeights load_decoder_layer(const Checkpoint& ckpt, const ModelConfig& config, int layer) {
  DecoderLayerWeights w;
  w.input_norm = read_vector(ckpt, layer_tensor_name(layer, "input_layernorm.weight"), config.hidden_size);
  w.post_attention_norm =
      read_vector(ckpt, layer_tensor_name(layer, "post_attention_layernorm.weight"), config.hidden_size);
  for (const LinearSpec& spec : decoder_linears(config)) {
    LinearWeights l;
    l.dense = read_matrix(ckpt, linear_weight_name(layer, spec.name), spec.rows, spec.cols);
    if (spec.has_bias) l.bias = read_vector(ckpt, linear_bias_name(layer, spec.name), spec.rows);
    w.linears.push_back(std::move(l));
  }
  return w;
}

ModelWeights load_model_weights(const Checkpoint& ckpt, const ModelConfig& config, int first_layer, int end_layer,
                                bool with_embedding, bool with_head) {
  AMLQ_ASSERT(0 <= first_layer && first_layer <= end_layer && end_layer <= config.num_layers,
              "layer range [{}, {}) of a {}-layer model", first_layer, end_layer, config.num_layers);
  ModelWeights w;
  w.config = config;
  w.first_layer = first_layer;
  w.has_head = with_head;
  if (with_embedding || (with_head && config.tie_word_embeddings))
    w.embedding = read_matrix(ckpt, "model.embed_tokens.weight", config.vocab_size, config.hidden_size);
  for (int layer = first_layer; layer < end_layer; ++layer) w.layers.push_back(load_decoder_layer(ckpt, config, layer));
  if (with_head) {
    w.final_norm = read_vector(ckpt, "model.norm.weight", config.hidden_size);
    if (!config.tie_word_embeddings)
      w.lm_head = read_matrix(ckpt, "lm_head.weight", config.vocab_size, config.hidden_size);
  }
  return w;
}

MatrixF embed_from_checkpoint(const Checkpoint& ckpt, const ModelConfig& config, std::span<const int32_t> ids) {
  const std::string name = "model.embed_tokens.weight";
  if (!ckpt.has(name)) AMLQ_FAIL(Input, "{}: tensor '{}' is missing", ckpt.path(), name);
  const auto& shape = ckpt.info(name).shape;
  if (shape != std::vector<int64_t>{config.vocab_size, config.hidden_size})
    AMLQ_FAIL(Input, "{}: tensor '{}' has shape [{}], config.json implies [{}, {}]", ckpt.file_of(name), name,
              fmt::join(shape, ", "), config.vocab_size, config.hidden_size);
  MatrixF out(static_cast<Eigen::Index>(ids.size()), config.hidden_size);
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    AMLQ_REQUIRE(id >= 0 && id < config.vocab_size, "token id {} at position {} is outside the vocabulary [0, {})", id,
                 i, config.vocab_size);
    ckpt.read_rows_f32(name, id, 1, out.row(static_cast<Eigen::Index>(i)).data());
  }
  return out;
}

ModelWeights load_model_weights(const std::string& model_dir) {
  const ModelConfig config = load_model_config(model_dir);
  const Checkpoint ckpt = Checkpoint::open(model_dir);
  return load_model_weights(ckpt, config, 0, config.num_layers, true, true);
}

}  // namespace amlq
