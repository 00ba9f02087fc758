#pragma once
// config.json of the Llama family and the architecture table: which linear
// layers a decoder layer has, their shapes, and which share an input.
#include <string>
#include <vector>

namespace amlq {

enum class Arch { Llama, Mistral, Qwen2 };

struct RopeScaling {
  enum class Type { None, Linear, Llama3 } type = Type::None;
  double factor = 1.0;
  double low_freq_factor = 1.0;   // llama3
  double high_freq_factor = 4.0;  // llama3
  int original_max_position = 8192;  // llama3
};

struct ModelConfig {
  Arch arch = Arch::Llama;
  std::string model_type;  // as in config.json
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int vocab_size = 0;
  int max_position = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // qwen2, or attention_bias=true
  int bos_token_id = 1;
  int eos_token_id = 2;
  std::string source_json;  // config.json verbatim, recorded in outputs
};

// Reads MODEL_DIR/config.json (or a path to a config.json).
ModelConfig load_model_config(const std::string& path);
ModelConfig parse_model_config(const std::string& json_text, const std::string& origin);
std::string arch_name(Arch arch);
// The model_type values amlq accepts, for error messages and --help.
std::string supported_architectures();

// Inputs that several linears share get one Hessian.
enum class InputSite { AttnIn, AttnOut, MlpIn, MlpOut };
std::string input_site_name(InputSite site);

struct LinearSpec {
  std::string name;  // "self_attn.q_proj"
  int rows = 0;      // output features
  int cols = 0;      // input features
  InputSite input = InputSite::AttnIn;
  bool has_bias = false;
  int64_t numel() const { return static_cast<int64_t>(rows) * cols; }
};

// The quantized linears of one decoder layer, in execution order.
std::vector<LinearSpec> decoder_linears(const ModelConfig& config);
// "model.layers.{layer}.{linear}.weight"
std::string linear_weight_name(int layer, const std::string& linear);
std::string linear_bias_name(int layer, const std::string& linear);
std::string layer_tensor_name(int layer, const std::string& suffix);  // "model.layers.3.input_layernorm.weight"

struct ParameterCount {
  int64_t embedding = 0;
  int64_t per_layer_linear = 0;
  int64_t per_layer_other = 0;  // norms and biases
  int64_t final_norm = 0;
  int64_t lm_head = 0;  // 0 when tied
  int num_layers = 0;
  int64_t quantized() const { return per_layer_linear * num_layers; }
  int64_t total() const {
    return embedding + (per_layer_linear + per_layer_other) * num_layers + final_norm + lm_head;
  }
};
ParameterCount count_parameters(const ModelConfig& config);

}  // namespace amlq
