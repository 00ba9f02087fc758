#include "tests/model/synthetic_model.h"

#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

namespace amlq::test {
namespace {

MatrixF random_matrix(std::mt19937_64& rng, int rows, int cols, float scale) {
  std::normal_distribution<float> dist(0.0f, scale);
  MatrixF m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = dist(rng);
  return m;
}

VectorF random_norm(std::mt19937_64& rng, int n) {
  std::uniform_real_distribution<float> dist(0.5f, 1.5f);
  VectorF v(n);
  for (int i = 0; i < n; ++i) v[i] = dist(rng);
  return v;
}

std::string config_json(int layers) {
  nlohmann::json j = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"hidden_size", 32},
      {"intermediate_size", 48},
      {"num_hidden_layers", layers},
      {"num_attention_heads", 4},
      {"num_key_value_heads", 2},
      {"head_dim", 8},
      {"vocab_size", 64},
      {"max_position_embeddings", 256},
      {"rms_norm_eps", 1e-5},
      {"rope_theta", 10000.0},
      // Short original context so all three llama3 regimes occur at head_dim 8.
      {"rope_scaling",
       {{"rope_type", "llama3"},
        {"factor", 8.0},
        {"low_freq_factor", 1.0},
        {"high_freq_factor", 4.0},
        {"original_max_position_embeddings", 64}}},
      {"tie_word_embeddings", false},
      {"attention_bias", true},
      {"bos_token_id", 1},
      {"eos_token_id", 2},
  };
  return j.dump(2);
}

}  // namespace

ModelConfig synthetic_config(int layers) { return parse_model_config(config_json(layers), "synthetic config.json"); }

ModelWeights synthetic_weights(const ModelConfig& config, uint64_t seed) {
  std::mt19937_64 rng(seed);
  ModelWeights w;
  w.config = config;
  w.has_head = true;
  w.embedding = random_matrix(rng, config.vocab_size, config.hidden_size, 1.0f);
  for (int l = 0; l < config.num_layers; ++l) {
    DecoderLayerWeights layer;
    layer.input_norm = random_norm(rng, config.hidden_size);
    layer.post_attention_norm = random_norm(rng, config.hidden_size);
    for (const LinearSpec& spec : decoder_linears(config)) {
      LinearWeights lin;
      lin.dense = random_matrix(rng, spec.rows, spec.cols, 1.0f / std::sqrt(static_cast<float>(spec.cols)));
      if (spec.has_bias) lin.bias = random_matrix(rng, spec.rows, 1, 0.1f);
      layer.linears.push_back(std::move(lin));
    }
    w.layers.push_back(std::move(layer));
  }
  w.final_norm = random_norm(rng, config.hidden_size);
  w.lm_head = random_matrix(rng, config.vocab_size, config.hidden_size, 0.2f);
  return w;
}

void write_checkpoint(const ModelWeights& w, const std::string& dir) {
  std::ofstream(dir + "/config.json") << config_json(w.config.num_layers);
  SafetensorsWriter writer;
  auto add_matrix = [&](const std::string& name, const MatrixF& m) {
    writer.add_f32(name, {m.rows(), m.cols()}, std::span<const float>(m.data(), static_cast<size_t>(m.size())));
  };
  auto add_vector = [&](const std::string& name, const VectorF& v) {
    writer.add_f32(name, {v.size()}, std::span<const float>(v.data(), static_cast<size_t>(v.size())));
  };
  add_matrix("model.embed_tokens.weight", w.embedding);
  add_vector("model.norm.weight", w.final_norm);
  add_matrix("lm_head.weight", w.lm_head);
  const auto specs = decoder_linears(w.config);
  for (int l = 0; l < w.config.num_layers; ++l) {
    const auto& layer = w.layers[l];
    add_vector(layer_tensor_name(l, "input_layernorm.weight"), layer.input_norm);
    add_vector(layer_tensor_name(l, "post_attention_layernorm.weight"), layer.post_attention_norm);
    for (size_t i = 0; i < specs.size(); ++i) {
      add_matrix(linear_weight_name(l, specs[i].name), layer.linears[i].dense);
      if (layer.linears[i].bias.size()) add_vector(linear_bias_name(l, specs[i].name), layer.linears[i].bias);
    }
  }
  writer.write(dir + "/model.safetensors");
}

}  // namespace amlq::test
