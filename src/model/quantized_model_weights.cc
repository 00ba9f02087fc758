// Evaluation of amlq .h5 models: packed linears (W_hat x + A (B x) through
// Backend::dequant_linear) plus the passthrough tensors in their source dtype.
#include <fmt/format.h>

#include <map>

#include "core/error.h"
#include "io/hdf5/quantized_model.h"
#include "model/model_weights.h"

namespace amlq {
namespace {

std::vector<float> to_f32(const PassthroughTensor& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  convert_to_f32(t.dtype, t.data.data(), out.size(), out.data());
  return out;
}

}  // namespace

ModelWeights load_quantized_model_weights(const std::string& h5_path) {
  QuantizedModel file = read_quantized_model(h5_path, true);
  ModelWeights w;
  w.config = parse_model_config(file.header.config_json, h5_path + " (config_json attribute)");
  const ModelConfig& c = w.config;
  std::map<std::string, const PassthroughTensor*> passthrough;
  for (const auto& t : file.passthrough) passthrough[t.name] = &t;
  auto tensor = [&](const std::string& name, std::vector<int64_t> shape) {
    const auto it = passthrough.find(name);
    if (it == passthrough.end()) AMLQ_FAIL(Input, "{}: passthrough tensor '{}' is missing", h5_path, name);
    if (it->second->shape != shape)
      AMLQ_FAIL(Input, "{}: passthrough tensor '{}' has shape [{}], config implies [{}]", h5_path, name,
                fmt::join(it->second->shape, ", "), fmt::join(shape, ", "));
    return to_f32(*it->second);
  };
  auto vector = [&](const std::string& name, int n) {
    const auto v = tensor(name, {n});
    return VectorF(Eigen::Map<const VectorF>(v.data(), n));
  };
  auto matrix = [&](const std::string& name, int rows, int cols) {
    const auto v = tensor(name, {rows, cols});
    return MatrixF(Eigen::Map<const MatrixF>(v.data(), rows, cols));
  };

  w.embedding = matrix("model.embed_tokens.weight", c.vocab_size, c.hidden_size);
  w.final_norm = vector("model.norm.weight", c.hidden_size);
  if (!c.tie_word_embeddings) w.lm_head = matrix("lm_head.weight", c.vocab_size, c.hidden_size);
  w.has_head = true;
  w.first_layer = 0;

  std::map<std::string, std::shared_ptr<const PackedLinear>> linears;
  for (auto& l : file.linears) {
    const std::string name = l.name;
    linears[name] = std::make_shared<const PackedLinear>(std::move(l));
  }
  const auto specs = decoder_linears(c);
  for (int layer = 0; layer < c.num_layers; ++layer) {
    DecoderLayerWeights d;
    d.input_norm = vector(layer_tensor_name(layer, "input_layernorm.weight"), c.hidden_size);
    d.post_attention_norm = vector(layer_tensor_name(layer, "post_attention_layernorm.weight"), c.hidden_size);
    for (const auto& spec : specs) {
      const std::string name = layer_tensor_name(layer, spec.name);
      const auto it = linears.find(name);
      if (it == linears.end()) AMLQ_FAIL(Input, "{}: quantized linear '{}' is missing", h5_path, name);
      if (it->second->rows != spec.rows || it->second->cols != spec.cols)
        AMLQ_FAIL(Input, "{}: linear '{}' is {} x {}, config implies {} x {}", h5_path, name, it->second->rows,
                  it->second->cols, spec.rows, spec.cols);
      LinearWeights lw;
      lw.packed = it->second;
      d.linears.push_back(std::move(lw));
    }
    w.layers.push_back(std::move(d));
  }
  return w;
}

}  // namespace amlq
