#include "io/model_config.h"

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <type_traits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <filesystem>

#include "core/error.h"
#include "io/json_value.h"

namespace amlq {

using json = nlohmann::json;

namespace {

struct ArchEntry {
  const char* model_type;
  Arch arch;
  bool qkv_bias;  // default for this family
};
constexpr ArchEntry kArchs[] = {
    {"llama", Arch::Llama, false},
    {"mistral", Arch::Mistral, false},
    {"qwen2", Arch::Qwen2, true},
};

template <typename T>
T get_required(const json& j, const char* key, const std::string& origin) {
  return json_field<T>(j, key, origin);
}

template <typename T>
T get_optional(const json& j, const char* key, T fallback, const std::string& origin) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return fallback;
  return json_value_as<T>(j[key], key, origin);
}

void require_positive(int value, const char* key, const std::string& origin) {
  if (value <= 0) AMLQ_FAIL(Input, "{}: '{}' must be positive, got {}", origin, key, value);
}

// Sizes beyond any real model; the bound keeps every derived product (rows x cols,
// vocab x hidden) far inside int64 and every per-layer width inside int.
constexpr int kMaxDimension = 1 << 24;
constexpr int kMaxLayers = 1 << 16;

void require_dimension(int64_t value, const char* what, const std::string& origin) {
  if (value > kMaxDimension) AMLQ_FAIL(Input, "{}: {} = {} exceeds {}", origin, what, value, kMaxDimension);
}

}  // namespace

std::string supported_architectures() {
  std::string out;
  for (const auto& e : kArchs) out += (out.empty() ? "" : ", ") + std::string(e.model_type);
  return out;
}

std::string arch_name(Arch arch) {
  for (const auto& e : kArchs)
    if (e.arch == arch) return e.model_type;
  return "unknown";
}

ModelConfig parse_model_config(const std::string& json_text, const std::string& origin) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for numbers like 1e400
    AMLQ_FAIL(Input, "{}: not valid JSON: {}", origin, e.what());
  }
  if (!j.is_object()) AMLQ_FAIL(Input, "{}: not a JSON object", origin);
  ModelConfig c;
  c.source_json = json_text;
  c.model_type = get_required<std::string>(j, "model_type", origin);
  const ArchEntry* entry = nullptr;
  for (const auto& e : kArchs)
    if (c.model_type == e.model_type) entry = &e;
  if (!entry)
    AMLQ_FAIL(Input, "{}: unsupported architecture model_type='{}' (supported: {})", origin, c.model_type,
              supported_architectures());
  c.arch = entry->arch;
  c.hidden_size = get_required<int>(j, "hidden_size", origin);
  c.intermediate_size = get_required<int>(j, "intermediate_size", origin);
  c.num_layers = get_required<int>(j, "num_hidden_layers", origin);
  c.num_heads = get_required<int>(j, "num_attention_heads", origin);
  c.num_kv_heads = get_optional<int>(j, "num_key_value_heads", c.num_heads, origin);
  c.vocab_size = get_required<int>(j, "vocab_size", origin);
  for (auto [v, k] : {std::pair{c.hidden_size, "hidden_size"}, {c.intermediate_size, "intermediate_size"},
                      {c.num_layers, "num_hidden_layers"}, {c.num_heads, "num_attention_heads"},
                      {c.num_kv_heads, "num_key_value_heads"}, {c.vocab_size, "vocab_size"}}) {
    require_positive(v, k, origin);
    require_dimension(v, k, origin);
  }
  if (c.num_layers > kMaxLayers)
    AMLQ_FAIL(Input, "{}: num_hidden_layers = {} exceeds {}", origin, c.num_layers, kMaxLayers);
  c.head_dim = get_optional<int>(j, "head_dim", c.hidden_size / c.num_heads, origin);
  require_positive(c.head_dim, "head_dim", origin);
  if (c.num_heads % c.num_kv_heads != 0)
    AMLQ_FAIL(Input, "{}: num_attention_heads ({}) is not a multiple of num_key_value_heads ({})", origin,
              c.num_heads, c.num_kv_heads);
  if (c.head_dim % 2 != 0) AMLQ_FAIL(Input, "{}: head_dim {} must be even for RoPE", origin, c.head_dim);
  require_dimension(int64_t{c.num_heads} * c.head_dim, "num_attention_heads x head_dim", origin);
  c.max_position = get_optional<int>(j, "max_position_embeddings", 2048, origin);
  c.rms_norm_eps = get_optional<double>(j, "rms_norm_eps", 1e-6, origin);
  c.rope_theta = get_optional<double>(j, "rope_theta", 10000.0, origin);
  if (!(c.rms_norm_eps >= 0)) AMLQ_FAIL(Input, "{}: rms_norm_eps {} is negative", origin, c.rms_norm_eps);
  if (!(c.rope_theta > 0)) AMLQ_FAIL(Input, "{}: rope_theta {} must be positive", origin, c.rope_theta);
  c.tie_word_embeddings = get_optional<bool>(j, "tie_word_embeddings", false, origin);
  c.qkv_bias = get_optional<bool>(j, "attention_bias", entry->qkv_bias, origin);
  c.bos_token_id = get_optional<int>(j, "bos_token_id", 1, origin);
  if (j.contains("eos_token_id") && j["eos_token_id"].is_array()) {
    // Several end tokens (Llama-3): the first is the one amlq uses.
    if (j["eos_token_id"].empty()) AMLQ_FAIL(Input, "{}: eos_token_id is an empty list", origin);
    c.eos_token_id = json_value_as<int>(j["eos_token_id"][0], "eos_token_id", origin);
  } else {
    c.eos_token_id = get_optional<int>(j, "eos_token_id", 2, origin);
  }
  const std::string act = get_optional<std::string>(j, "hidden_act", "silu", origin);
  if (act != "silu") AMLQ_FAIL(Input, "{}: hidden_act '{}' is not supported (only silu)", origin, act);

  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    const auto& rs = j["rope_scaling"];
    const std::string where = origin + " rope_scaling";
    if (!rs.is_object()) AMLQ_FAIL(Input, "{}: rope_scaling is not an object", origin);
    const std::string kind = rs.contains("rope_type") ? get_required<std::string>(rs, "rope_type", where)
                                                      : get_optional<std::string>(rs, "type", "default", where);
    if (kind == "linear") {
      c.rope_scaling.type = RopeScaling::Type::Linear;
      c.rope_scaling.factor = get_required<double>(rs, "factor", where);
    } else if (kind == "llama3") {
      c.rope_scaling.type = RopeScaling::Type::Llama3;
      c.rope_scaling.factor = get_required<double>(rs, "factor", where);
      c.rope_scaling.low_freq_factor = get_optional<double>(rs, "low_freq_factor", 1.0, where);
      c.rope_scaling.high_freq_factor = get_optional<double>(rs, "high_freq_factor", 4.0, where);
      c.rope_scaling.original_max_position = get_optional<int>(rs, "original_max_position_embeddings", 8192, where);
      const auto& r = c.rope_scaling;
      if (!(r.low_freq_factor > 0 && r.high_freq_factor > r.low_freq_factor && r.original_max_position > 0))
        AMLQ_FAIL(Input, "{}: needs 0 < low_freq_factor ({}) < high_freq_factor ({}) and a positive "
                  "original_max_position_embeddings ({})", where, r.low_freq_factor, r.high_freq_factor,
                  r.original_max_position);
    } else if (kind != "default") {
      AMLQ_FAIL(Input, "{}: rope_scaling type '{}' is not supported (none, linear, llama3)", origin, kind);
    }
    if (!(c.rope_scaling.factor > 0)) AMLQ_FAIL(Input, "{}: factor {} must be positive", where, c.rope_scaling.factor);
  }
  return c;
}

ModelConfig load_model_config(const std::string& path) {
  std::filesystem::path p(path);
  if (std::filesystem::is_directory(p)) p /= "config.json";
  std::ifstream in(p);
  if (!in) AMLQ_FAIL(Input, "{}: cannot open model config", p.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_model_config(ss.str(), p.string());
}

std::string input_site_name(InputSite site) {
  switch (site) {
    case InputSite::AttnIn: return "attn_in";
    case InputSite::AttnOut: return "attn_out";
    case InputSite::MlpIn: return "mlp_in";
    case InputSite::MlpOut: return "mlp_out";
  }
  return "unknown";
}

std::vector<LinearSpec> decoder_linears(const ModelConfig& c) {
  const int q_out = c.num_heads * c.head_dim;
  const int kv_out = c.num_kv_heads * c.head_dim;
  const int h = c.hidden_size;
  const int f = c.intermediate_size;
  return {
      {"self_attn.q_proj", q_out, h, InputSite::AttnIn, c.qkv_bias},
      {"self_attn.k_proj", kv_out, h, InputSite::AttnIn, c.qkv_bias},
      {"self_attn.v_proj", kv_out, h, InputSite::AttnIn, c.qkv_bias},
      {"self_attn.o_proj", h, q_out, InputSite::AttnOut, false},
      {"mlp.gate_proj", f, h, InputSite::MlpIn, false},
      {"mlp.up_proj", f, h, InputSite::MlpIn, false},
      {"mlp.down_proj", h, f, InputSite::MlpOut, false},
  };
}

std::string layer_tensor_name(int layer, const std::string& suffix) {
  return fmt::format("model.layers.{}.{}", layer, suffix);
}
std::string linear_weight_name(int layer, const std::string& linear) {
  return layer_tensor_name(layer, linear + ".weight");
}
std::string linear_bias_name(int layer, const std::string& linear) {
  return layer_tensor_name(layer, linear + ".bias");
}

ParameterCount count_parameters(const ModelConfig& c) {
  ParameterCount p;
  p.num_layers = c.num_layers;
  p.embedding = static_cast<int64_t>(c.vocab_size) * c.hidden_size;
  for (const auto& l : decoder_linears(c)) {
    p.per_layer_linear += l.numel();
    if (l.has_bias) p.per_layer_other += l.rows;
  }
  p.per_layer_other += 2 * static_cast<int64_t>(c.hidden_size);  // input + post-attention RMSNorm
  p.final_norm = c.hidden_size;
  p.lm_head = c.tie_word_embeddings ? 0 : static_cast<int64_t>(c.vocab_size) * c.hidden_size;
  return p;
}

}  // namespace amlq
