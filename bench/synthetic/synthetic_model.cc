// Synthetic checkpoints: presets, the statistical model of the weights, and the
// streaming writer.
//
// The statistical model (constants in StatsModel, synthetic_model.h)
// ------------------------------------------------------------------
// Meant to exercise the numerics of quantization the way trained LLM
// checkpoints do, not to be a language model. A weight is
//     W[r, c] = sigma * row[r] * col[c] * t[r, c]
// with t a unit-variance heavy-tailed draw and the factors below.
//
//  * Heavy tails. Every random value is a draw of Student's t with 5 degrees
//    of freedom, normalized to unit variance: the quantile function is
//    tabulated at the 2^16 midpoints (k + 0.5) / 2^16 (closed-form CDF of
//    t(5), solved by bisection) and a draw is one lookup with 16 random bits.
//    The table's kurtosis is 7.5 (Gaussian: 3) and its largest value 12.7
//    standard deviations, so group ranges are set by a few large weights, as
//    in trained models.
//
//  * Outlier channels, visible in the weights AND in the activations, so that
//    Hessians X^T X get large diagonal entries:
//      - hidden channels: max(2, hidden/2048) of them, the same in every layer
//        (like the massive activations that persist along the residual
//        stream). The residual stream carries them residual_row_scale (2.5x)
//        larger: the embedding's columns and the o_proj / down_proj rows that
//        write them are 2.5x. The RMSNorm weights (input_layernorm,
//        post_attention_layernorm) are outlier_norm_gain (6x) the layer's mean
//        there. So the inputs of q/k/v and gate/up are ~15x larger in these
//        channels: their Hessian diagonal is typically 50-150x the median
//        channel's (it varies with depth, as the residual stream's channel
//        energies spread; tests/bench/synthetic_model_test.cc measures it);
//      - per layer, a few rows of v_proj (max(1, kv_dim/512)) and a few
//        intermediate channels (max(2, intermediate/2048)) have rows
//        outlier_row_scale (3x) larger in v_proj and in both gate and up, so
//        the inputs of o_proj (~3x) and down_proj (~9x, then through silu)
//        have outlier channels too;
//      - in every linear the columns at its outlier input channels are
//        outlier_column_scale (4x) larger, but never so large that those few
//        channels carry more than max_outlier_share (2/3) of the output
//        variance: a handful of columns dominating every output makes the
//        residual stream's channel energies so uneven that the outliers fade
//        from the activations within a few layers. At small test shapes the
//        cap binds; at the presets' shapes nearly every linear keeps the
//        full 4x (and all at least 3.2x).
//
//  * Spread of rows and columns: every row (output channel) of a matrix is
//    scaled by exp(0.15 z) and every column by exp(0.10 z), z a t(5) draw, as
//    per-channel weight norms vary in trained models.
//
//  * Drift across layers: the weight scale grows geometrically from 0.8x in
//    the first layer to 1.25x in the last, and the mean RMSNorm weight from
//    0.25 to 0.75 (spread 10%, t-distributed), as norms grow with depth in
//    Llama checkpoints.
//
//  * Activations stay finite through any number of layers: sigma of each
//    linear is drift / sqrt(sum_c col_c^2 e_c), where e_c is the expected
//    relative energy of input channel c (squared normalized RMSNorm weight
//    times the residual's outlier factor for q/k/v/gate/up; squared v_proj
//    row scale for o_proj; product of the squared gate and up row scales for
//    down_proj). Without outliers this is drift / sqrt(fan_in), the usual
//    initialization; with them each linear's output keeps the scale drift x
//    (input scale), so the pre-norm residual stream grows only additively
//    (in the test, its RMS grows from ~0.05 after the first layer to a few
//    units after 24).
//
//  * Embeddings: std 0.02 with t(5) tails and a per-token scale exp(0.15 z);
//    final norm: mean 1 with 10% spread; lm_head: 1/sqrt(hidden) with row
//    spread; qkv biases (qwen2): 0.1 x the layer's activation scale.
//
// Randomness: value i of tensor T is a function of (seed, T's name, i) alone:
// the key of T is SplitMix64(FNV-1a(name, seed)) and the 64-bit word w of a
// stream is SplitMix64's output function at counter key + (w + 1) * golden
// ratio, i.e. SplitMix64 used as a counter-based generator. One word gives
// four 16-bit table indices. Row and column scales use sub-keys of T's key. So
// any row block of any tensor is produced independently: the bytes do not
// depend on the number of threads, and nothing is held beyond one block.
#include "bench/synthetic/synthetic_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <numbers>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/parallel.h"
#include "core/timer.h"
#include "io/safetensors.h"

namespace amlq::synthetic {

namespace {

using ojson = nlohmann::ordered_json;

// ---------------------------------------------------------------------------
// Presets. Each is the real config.json of the model (fields in the file's
// order, minus _name_or_path and transformers_version), looked up on the
// Hugging Face hub:
//   llama2-7b    meta-llama/Llama-2-7b-hf
//   llama2-70b   meta-llama/Llama-2-70b-hf
//   llama3-8b    meta-llama/Meta-Llama-3-8B
//   llama3-70b   meta-llama/Meta-Llama-3-70B
//   llama3.1-8b  meta-llama/Llama-3.1-8B   (Meta-Llama-3 has "rope_scaling": null;
//   llama3.1-70b meta-llama/Llama-3.1-70B   the llama3 rope scaling came with 3.1)
//   qwen2-72b    Qwen/Qwen2-72B            (qkv biases are implied by model_type qwen2)
//   mistral-7b   mistralai/Mistral-7B-v0.1
// The Llama-2 files omit rope_theta (transformers' default 10000.0); it is
// written here explicitly, which parses the same.

ojson llama2(int hidden, int intermediate, int heads, int layers, int kv_heads) {
  return ojson{{"architectures", {"LlamaForCausalLM"}},
               {"bos_token_id", 1},
               {"eos_token_id", 2},
               {"hidden_act", "silu"},
               {"hidden_size", hidden},
               {"initializer_range", 0.02},
               {"intermediate_size", intermediate},
               {"max_position_embeddings", 4096},
               {"model_type", "llama"},
               {"num_attention_heads", heads},
               {"num_hidden_layers", layers},
               {"num_key_value_heads", kv_heads},
               {"pretraining_tp", 1},
               {"rms_norm_eps", 1e-05},
               {"rope_scaling", nullptr},
               {"rope_theta", 10000.0},
               {"tie_word_embeddings", false},
               {"torch_dtype", "float16"},
               {"use_cache", true},
               {"vocab_size", 32000}};
}

ojson llama3(int hidden, int intermediate, int heads, int layers, bool llama31) {
  ojson j{{"architectures", {"LlamaForCausalLM"}},
          {"attention_bias", false},
          {"attention_dropout", 0.0},
          {"bos_token_id", 128000},
          {"eos_token_id", 128001},
          {"hidden_act", "silu"},
          {"hidden_size", hidden},
          {"initializer_range", 0.02},
          {"intermediate_size", intermediate},
          {"max_position_embeddings", llama31 ? 131072 : 8192}};
  if (llama31) j["mlp_bias"] = false;
  j["model_type"] = "llama";
  j["num_attention_heads"] = heads;
  j["num_hidden_layers"] = layers;
  j["num_key_value_heads"] = 8;
  j["pretraining_tp"] = 1;
  j["rms_norm_eps"] = 1e-05;
  if (llama31) {
    j["rope_scaling"] = ojson{{"factor", 8.0},
                              {"high_freq_factor", 4.0},
                              {"low_freq_factor", 1.0},
                              {"original_max_position_embeddings", 8192},
                              {"rope_type", "llama3"}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  j["rope_theta"] = 500000.0;
  j["tie_word_embeddings"] = false;
  j["torch_dtype"] = "bfloat16";
  j["use_cache"] = true;
  j["vocab_size"] = 128256;
  return j;
}

ojson qwen2_72b() {
  return ojson{{"architectures", {"Qwen2ForCausalLM"}},
               {"attention_dropout", 0.0},
               {"bos_token_id", 151643},
               {"eos_token_id", 151643},
               {"hidden_act", "silu"},
               {"hidden_size", 8192},
               {"initializer_range", 0.02},
               {"intermediate_size", 29568},
               {"max_position_embeddings", 131072},
               {"max_window_layers", 28},
               {"model_type", "qwen2"},
               {"num_attention_heads", 64},
               {"num_hidden_layers", 80},
               {"num_key_value_heads", 8},
               {"rms_norm_eps", 1e-05},
               {"rope_theta", 1000000.0},
               {"sliding_window", 131072},
               {"tie_word_embeddings", false},
               {"torch_dtype", "bfloat16"},
               {"use_cache", true},
               {"use_sliding_window", false},
               {"vocab_size", 152064}};
}

ojson mistral_7b() {
  return ojson{{"architectures", {"MistralForCausalLM"}},
               {"bos_token_id", 1},
               {"eos_token_id", 2},
               {"hidden_act", "silu"},
               {"hidden_size", 4096},
               {"initializer_range", 0.02},
               {"intermediate_size", 14336},
               {"max_position_embeddings", 32768},
               {"model_type", "mistral"},
               {"num_attention_heads", 32},
               {"num_hidden_layers", 32},
               {"num_key_value_heads", 8},
               {"rms_norm_eps", 1e-05},
               {"rope_theta", 10000.0},
               {"sliding_window", 4096},
               {"tie_word_embeddings", false},
               {"torch_dtype", "bfloat16"},
               {"use_cache", true},
               {"vocab_size", 32000}};
}

// Without --preset: the small Llama make_synthetic_model always wrote.
ojson custom_llama() {
  return ojson{{"architectures", {"LlamaForCausalLM"}},
               {"model_type", "llama"},
               {"hidden_size", 1024},
               {"intermediate_size", 2816},
               {"num_hidden_layers", 8},
               {"num_attention_heads", 16},
               {"num_key_value_heads", 4},
               {"vocab_size", 512},
               {"max_position_embeddings", 2048},
               {"rms_norm_eps", 1e-05},
               {"rope_theta", 10000.0},
               {"rope_scaling", nullptr},
               {"hidden_act", "silu"},
               {"tie_word_embeddings", false},
               {"attention_bias", false},
               {"mlp_bias", false},
               {"bos_token_id", 1},
               {"eos_token_id", 2},
               {"torch_dtype", "float32"}};
}

// ---------------------------------------------------------------------------
// Random numbers.

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ull;

inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
inline uint64_t stream_word(uint64_t key, uint64_t counter) { return mix64(key + (counter + 1) * kGolden); }

uint64_t tensor_key(const std::string& name, uint64_t seed) {
  Hasher h;
  h.update(name).update(seed);
  return mix64(h.digest());
}
uint64_t sub_key(uint64_t key, uint64_t tag) { return mix64(key ^ (tag * 0xd1b54a32d192ed03ull)); }

// CDF of Student's t with 5 degrees of freedom in theta = atan(t / sqrt(5)),
// shifted: G(theta) = pi * (F(t) - 1/2).
double t5_shifted_cdf(double theta) {
  const double c = std::cos(theta);
  return theta + std::sin(theta) * c * (1.0 + (2.0 / 3.0) * c * c);
}

// Unit-variance t(5) quantiles at the midpoints of 2^16 equal-probability cells.
const std::vector<float>& student_t_table() {
  static const std::vector<float> table = [] {
    constexpr int kSize = 1 << 16;
    std::vector<double> q(kSize);
    for (int k = kSize / 2; k < kSize; ++k) {  // upper half; the lower is symmetric
      const double target = std::numbers::pi * ((k + 0.5) / kSize - 0.5);
      double lo = 0.0, hi = std::numbers::pi / 2;
      for (int it = 0; it < 60; ++it) {
        const double mid = 0.5 * (lo + hi);
        (t5_shifted_cdf(mid) < target ? lo : hi) = mid;
      }
      q[k] = std::sqrt(5.0) * std::tan(0.5 * (lo + hi));
      q[kSize - 1 - k] = -q[k];
    }
    double var = 0;
    for (double v : q) var += v * v;
    const double inv_std = 1.0 / std::sqrt(var / kSize);
    std::vector<float> out(kSize);
    for (int k = 0; k < kSize; ++k) out[k] = static_cast<float>(q[k] * inv_std);
    return out;
  }();
  return table;
}

// n unit-variance t(5) draws of stream `key` starting at element `first`.
void fill_student_t(uint64_t key, uint64_t first, size_t n, float* out) {
  const float* table = student_t_table().data();
  size_t i = 0;
  uint64_t e = first;
  for (; i < n && (e & 3) != 0; ++i, ++e) out[i] = table[(stream_word(key, e >> 2) >> (16 * (e & 3))) & 0xffff];
  for (; i + 4 <= n; i += 4, e += 4) {
    const uint64_t w = stream_word(key, e >> 2);
    out[i] = table[w & 0xffff];
    out[i + 1] = table[(w >> 16) & 0xffff];
    out[i + 2] = table[(w >> 32) & 0xffff];
    out[i + 3] = table[w >> 48];
  }
  for (; i < n; ++i, ++e) out[i] = table[(stream_word(key, e >> 2) >> (16 * (e & 3))) & 0xffff];
}
float student_t_at(uint64_t key, uint64_t index) {
  float v;
  fill_student_t(key, index, 1, &v);
  return v;
}

// `count` distinct channels out of [0, n), sorted.
std::vector<int> pick_channels(uint64_t key, int count, int n) {
  count = std::min(count, n);
  std::vector<int> out;
  for (uint64_t i = 0; static_cast<int>(out.size()) < count; ++i) {
    const int c = static_cast<int>(stream_word(key, i) % static_cast<uint64_t>(n));
    if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool contains(const std::vector<int>& sorted, int64_t c) {
  return std::binary_search(sorted.begin(), sorted.end(), static_cast<int>(c));
}

double geometric(double first, double last, int index, int count) {
  if (count <= 1) return first;
  return first * std::pow(last / first, static_cast<double>(index) / (count - 1));
}

std::string dtype_torch_name(DType dtype) {
  switch (dtype) {
    case DType::BF16: return "bfloat16";
    case DType::F16: return "float16";
    case DType::F32: return "float32";
    default: break;
  }
  AMLQ_FAIL(Usage, "--dtype must be bf16, f16 or f32");
}

// Linear indices in decoder_linears() order.
enum LinearIndex { kQ = 0, kK, kV, kO, kGate, kUp, kDown };

}  // namespace

// ---------------------------------------------------------------------------

const std::vector<Preset>& presets() {
  static const std::vector<Preset> list = {
      {"llama2-7b", "meta-llama/Llama-2-7b-hf", llama2(4096, 11008, 32, 32, 32)},
      {"llama2-70b", "meta-llama/Llama-2-70b-hf", llama2(8192, 28672, 64, 80, 8)},
      {"llama3-8b", "meta-llama/Meta-Llama-3-8B", llama3(4096, 14336, 32, 32, false)},
      {"llama3-70b", "meta-llama/Meta-Llama-3-70B", llama3(8192, 28672, 64, 80, false)},
      {"llama3.1-8b", "meta-llama/Llama-3.1-8B", llama3(4096, 14336, 32, 32, true)},
      {"llama3.1-70b", "meta-llama/Llama-3.1-70B", llama3(8192, 28672, 64, 80, true)},
      {"qwen2-72b", "Qwen/Qwen2-72B", qwen2_72b()},
      {"mistral-7b", "mistralai/Mistral-7B-v0.1", mistral_7b()},
  };
  return list;
}

const Preset& find_preset(const std::string& name) {
  std::string names;
  for (const Preset& p : presets()) {
    if (p.name == name) return p;
    names += (names.empty() ? "" : ", ") + p.name;
  }
  AMLQ_FAIL(Usage, "--preset '{}' is not known (presets: {})", name, names);
}

nlohmann::ordered_json synthetic_config_json(const SyntheticOptions& o) {
  ojson j = o.preset.empty() ? custom_llama() : find_preset(o.preset).config;
  const auto set = [&](int value, const char* option, const char* key) {
    if (value < 0) AMLQ_FAIL(Usage, "{} {} must be positive", option, value);
    if (value > 0) j[key] = value;
  };
  set(o.layers, "--layers", "num_hidden_layers");
  set(o.hidden, "--hidden", "hidden_size");
  set(o.intermediate, "--intermediate", "intermediate_size");
  set(o.heads, "--heads", "num_attention_heads");
  set(o.kv_heads, "--kv-heads", "num_key_value_heads");
  set(o.head_dim, "--head-dim", "head_dim");
  set(o.vocab, "--vocab", "vocab_size");
  j["torch_dtype"] = dtype_torch_name(o.dtype);

  const int hidden = j["hidden_size"].get<int>();
  const int heads = j["num_attention_heads"].get<int>();
  const int vocab = j["vocab_size"].get<int>();
  if (!j.contains("head_dim") && heads > 0 && hidden % heads != 0)
    AMLQ_FAIL(Usage, "hidden size {} is not a multiple of {} heads (give --head-dim)", hidden, heads);
  if (vocab < 2) AMLQ_FAIL(Usage, "--vocab {} must be at least 2", vocab);
  // A smaller --vocab than the preset's would leave bos/eos outside it.
  for (const char* key : {"bos_token_id", "eos_token_id"})
    if (j.contains(key) && j[key].is_number_integer() && j[key].get<int64_t>() >= vocab)
      j[key] = std::string(key) == "bos_token_id" ? 1 : std::min(2, vocab - 1);
  try {
    parse_model_config(j.dump(), "synthetic config.json");
  } catch (const Error& e) {
    AMLQ_FAIL(Usage, "these options give an invalid model: {}", e.what());
  }
  return j;
}

// ---------------------------------------------------------------------------

SyntheticModel::SyntheticModel(const ModelConfig& config, uint64_t seed, StatsModel stats)
    : config_(config), seed_(seed), stats_(stats), linears_(decoder_linears(config)) {
  static std::atomic<uint64_t> instances{0};
  instance_ = ++instances;
  const int layers = config_.num_layers;
  const int h = config_.hidden_size;
  const int kv_dim = config_.num_kv_heads * config_.head_dim;
  outliers_.hidden = pick_channels(sub_key(mix64(seed), 1), std::max(2, h / 2048), h);
  for (int l = 0; l < layers; ++l) {
    outliers_.value_rows.push_back(
        pick_channels(sub_key(mix64(seed), 1000 + 2 * l), std::max(1, kv_dim / 512), kv_dim));
    outliers_.intermediate.push_back(pick_channels(sub_key(mix64(seed), 1001 + 2 * l),
                                                   std::max(2, config_.intermediate_size / 2048),
                                                   config_.intermediate_size));
  }

  auto add = [&](std::string name, std::vector<int64_t> shape, Recipe r) {
    r.key = tensor_key(name, seed_);
    tensors_.push_back({std::move(name), std::move(shape)});
    recipes_.push_back(r);
  };
  add("model.embed_tokens.weight", {config_.vocab_size, h}, {Kind::Embedding});
  for (int l = 0; l < layers; ++l) {
    for (int i = 0; i < static_cast<int>(linears_.size()); ++i) {
      const LinearSpec& spec = linears_[i];
      add(linear_weight_name(l, spec.name), {spec.rows, spec.cols}, {Kind::Linear, l, i});
      if (spec.has_bias) add(linear_bias_name(l, spec.name), {spec.rows}, {Kind::Bias, l, i});
    }
    add(layer_tensor_name(l, "input_layernorm.weight"), {h}, {Kind::InputNorm, l});
    add(layer_tensor_name(l, "post_attention_layernorm.weight"), {h}, {Kind::PostNorm, l});
  }
  add("model.norm.weight", {h}, {Kind::FinalNorm});
  if (!config_.tie_word_embeddings) add("lm_head.weight", {config_.vocab_size, h}, {Kind::LmHead});
  for (int l = 0; l < layers; ++l) {
    input_norm_keys_.push_back(tensor_key(layer_tensor_name(l, "input_layernorm.weight"), seed_));
    post_norm_keys_.push_back(tensor_key(layer_tensor_name(l, "post_attention_layernorm.weight"), seed_));
  }
  final_norm_key_ = tensor_key("model.norm.weight", seed_);

  for (size_t i = 0; i < recipes_.size(); ++i) {
    const Recipe& r = recipes_[i];
    if (r.kind != Kind::Linear) continue;
    if (r.linear == kV) v_recipe_.push_back(i);
    if (r.linear == kGate) gate_recipe_.push_back(i);
    if (r.linear == kUp) up_recipe_.push_back(i);
  }
  for (Recipe& r : recipes_) {
    switch (r.kind) {
      case Kind::Embedding: r.scale = stats_.embedding_std; break;
      case Kind::LmHead: r.scale = 1.0 / std::sqrt(static_cast<double>(h)); break;
      case Kind::Linear: set_linear_scales(r); break;
      case Kind::Bias: r.scale = stats_.bias_std * layer_drift(r.layer) * norm_mean(r.layer); break;
      default: r.scale = 1.0; break;  // norms: norm_value
    }
  }
}

double SyntheticModel::layer_drift(int layer) const {
  return geometric(stats_.drift_first, stats_.drift_last, layer, config_.num_layers);
}
double SyntheticModel::norm_mean(int layer) const {
  return geometric(stats_.norm_mean_first, stats_.norm_mean_last, layer, config_.num_layers);
}

float SyntheticModel::norm_value(int layer, Kind kind, int64_t channel) const {
  const uint64_t key = kind == Kind::FinalNorm ? final_norm_key_
                       : kind == Kind::InputNorm ? input_norm_keys_[layer]
                                                 : post_norm_keys_[layer];
  const double mean = kind == Kind::FinalNorm ? 1.0 : norm_mean(layer);
  double v = mean * (1.0 + stats_.norm_spread * student_t_at(key, static_cast<uint64_t>(channel)));
  if (kind != Kind::FinalNorm && contains(outliers_.hidden, channel)) v *= stats_.outlier_norm_gain;
  return static_cast<float>(v);
}

float SyntheticModel::row_scale(const Recipe& r, int64_t row) const {
  double s = std::exp(stats_.row_spread * student_t_at(sub_key(r.key, 1), static_cast<uint64_t>(row)));
  if (r.kind == Kind::Linear) {
    if ((r.linear == kO || r.linear == kDown) && contains(outliers_.hidden, row)) s *= stats_.residual_row_scale;
    if (r.linear == kV && contains(outliers_.value_rows[r.layer], row)) s *= stats_.outlier_row_scale;
    if ((r.linear == kGate || r.linear == kUp) && contains(outliers_.intermediate[r.layer], row))
      s *= stats_.outlier_row_scale;
  }
  return static_cast<float>(s);
}

bool SyntheticModel::outlier_column(const Recipe& r, int64_t c) const {
  const LinearSpec& spec = linears_[r.linear];
  switch (spec.input) {
    case InputSite::AttnIn:
    case InputSite::MlpIn: return contains(outliers_.hidden, c);
    case InputSite::AttnOut: return contains(outliers_.value_rows[r.layer], value_channel(c));
    case InputSite::MlpOut: return contains(outliers_.intermediate[r.layer], c);
  }
  return false;
}

// The v_proj output channel that o_proj input channel c reads (GQA: each kv
// head serves num_heads / num_kv_heads query heads).
int64_t SyntheticModel::value_channel(int64_t c) const {
  const int group = config_.num_heads / config_.num_kv_heads;
  const int64_t head = c / config_.head_dim, d = c % config_.head_dim;
  return (head / group) * config_.head_dim + d;
}

// Expected energy of input channel c relative to an ordinary channel.
double SyntheticModel::input_energy(const Recipe& r, int64_t c) const {
  const int l = r.layer;
  double e = 1.0;
  switch (linears_[r.linear].input) {
    case InputSite::AttnIn:
    case InputSite::MlpIn: {
      // The normalized residual is residual_row_scale larger at the outlier
      // hidden channels, then scaled by the RMSNorm weight.
      e = norm_value(l, linears_[r.linear].input == InputSite::AttnIn ? Kind::InputNorm : Kind::PostNorm, c) /
          norm_mean(l);
      if (contains(outliers_.hidden, c)) e *= stats_.residual_row_scale;
      return e * e;
    }
    case InputSite::AttnOut: e = row_scale(recipes_[v_recipe_[l]], value_channel(c)); return e * e;
    case InputSite::MlpOut: {
      const double g = row_scale(recipes_[gate_recipe_[l]], c), u = row_scale(recipes_[up_recipe_[l]], c);
      return g * g * u * u;
    }
  }
  return e;
}

// Column factors of a linear without sigma: spread x (outlier_scale at outlier channels).
void SyntheticModel::column_scales(const Recipe& r, std::vector<float>& out) const {
  out.resize(static_cast<size_t>(linears_[r.linear].cols));
  fill_student_t(sub_key(r.key, 2), 0, out.size(), out.data());
  for (size_t c = 0; c < out.size(); ++c)
    out[c] = static_cast<float>(std::exp(stats_.column_spread * out[c]) *
                                (outlier_column(r, static_cast<int64_t>(c)) ? r.outlier_scale : 1.0));
}

// Sets r.outlier_scale (outlier_column_scale, lowered where the outlier
// channels would carry more than max_outlier_share of the output variance) and r.scale
// (sigma = drift / sqrt(sum_c col_c^2 e_c)).
void SyntheticModel::set_linear_scales(Recipe& r) const {
  r.outlier_scale = 1.0;
  std::vector<float> spread;
  column_scales(r, spread);
  double ordinary = 0, outlier = 0;
  for (size_t c = 0; c < spread.size(); ++c) {
    const double e = static_cast<double>(spread[c]) * spread[c] * input_energy(r, static_cast<int64_t>(c));
    (outlier_column(r, static_cast<int64_t>(c)) ? outlier : ordinary) += e;
  }
  // share = A^2 outlier / (A^2 outlier + ordinary) <= max_share
  const double share = stats_.max_outlier_share;
  const double cap = outlier > 0 ? std::sqrt(share / (1 - share) * ordinary / outlier) : stats_.outlier_column_scale;
  r.outlier_scale = std::clamp(cap, 1.0, stats_.outlier_column_scale);
  r.scale = layer_drift(r.layer) / std::sqrt(ordinary + r.outlier_scale * r.outlier_scale * outlier);
}

void SyntheticModel::generate(size_t index, int64_t row_begin, int64_t row_end, float* out) const {
  AMLQ_ASSERT(index < tensors_.size(), "tensor {} of {}", index, tensors_.size());
  const Tensor& t = tensors_[index];
  const Recipe& r = recipes_[index];
  AMLQ_ASSERT(0 <= row_begin && row_begin <= row_end && row_end <= t.rows(), "rows [{}, {}) of {}", row_begin,
              row_end, t.rows());
  const int64_t cols = t.cols();
  switch (r.kind) {
    case Kind::InputNorm:
    case Kind::PostNorm:
    case Kind::FinalNorm:
      for (int64_t i = row_begin; i < row_end; ++i) out[i - row_begin] = norm_value(r.layer, r.kind, i);
      return;
    case Kind::Bias:
      fill_student_t(r.key, static_cast<uint64_t>(row_begin), static_cast<size_t>(row_end - row_begin), out);
      for (int64_t i = 0; i < row_end - row_begin; ++i) out[i] *= static_cast<float>(r.scale);
      return;
    default: break;
  }
  // Column scales of the tensor this thread generated last (row blocks of one
  // tensor usually follow each other).
  thread_local std::vector<float> col_scale;
  thread_local uint64_t cached_instance = 0;  // instance ids start at 1
  thread_local size_t cached_index = 0;
  if ((r.kind == Kind::Linear || r.kind == Kind::Embedding) &&
      (cached_instance != instance_ || cached_index != index)) {
    cached_instance = 0;
    if (r.kind == Kind::Linear) {
      column_scales(r, col_scale);
    } else {  // the embedding starts the residual stream's outlier channels
      col_scale.assign(static_cast<size_t>(cols), 1.0f);
      for (int c : outliers_.hidden) col_scale[c] = static_cast<float>(stats_.residual_row_scale);
    }
    for (float& c : col_scale) c *= static_cast<float>(r.scale);
    cached_instance = instance_;
    cached_index = index;
  }
  for (int64_t row = row_begin; row < row_end; ++row) {
    float* dst = out + (row - row_begin) * cols;
    fill_student_t(r.key, static_cast<uint64_t>(row * cols), static_cast<size_t>(cols), dst);
    const float rs = row_scale(r, row);
    if (r.kind == Kind::Linear || r.kind == Kind::Embedding) {
      for (int64_t c = 0; c < cols; ++c) dst[c] *= rs * col_scale[c];
    } else {
      const float s = rs * static_cast<float>(r.scale);
      for (int64_t c = 0; c < cols; ++c) dst[c] *= s;
    }
  }
}

std::vector<float> SyntheticModel::generate(size_t index) const {
  const Tensor& t = tensors_.at(index);
  std::vector<float> out(static_cast<size_t>(t.rows() * t.cols()));
  generate(index, 0, t.rows(), out.data());
  return out;
}

// ---------------------------------------------------------------------------

namespace {

void write_text_atomic(const std::string& path, const std::string& text) {
  AtomicOutput out(path);
  {
    std::ofstream f(out.temp_path(), std::ios::binary | std::ios::trunc);
    if (!f) AMLQ_FAIL(Output, "{}: cannot open for writing", out.temp_path());
    f << text;
    f.flush();
    if (!f) AMLQ_FAIL(Output, "{}: write failed (disk full?)", out.temp_path());
  }
  out.commit();
}

// Row blocks of about this many output bytes are the unit of parallel work.
constexpr uint64_t kBlockBytes = 8ull << 20;
// Rows are generated as float32 this many at a time before conversion.
constexpr int64_t kChunkFloats = 1 << 16;

}  // namespace

WriteSummary write_synthetic_model(const SyntheticOptions& o,
                                   const std::function<void(uint64_t done, uint64_t total)>& progress) {
  if (o.out.empty()) AMLQ_FAIL(Usage, "--out is required");
  if (o.shard_bytes == 0) AMLQ_FAIL(Usage, "--shard-size must be positive");
  const ojson config_json = synthetic_config_json(o);
  const ModelConfig config = parse_model_config(config_json.dump(), o.out + "/config.json");
  Timer timer;

  // config.json goes first, so the directory stops looking like a finished
  // checkpoint until the new one is complete; the writer clears old shards.
  std::error_code ec;
  std::filesystem::create_directories(o.out, ec);
  if (ec) AMLQ_FAIL(Output, "{}: cannot create the directory: {}", o.out, ec.message());
  const std::string config_path = (std::filesystem::path(o.out) / "config.json").string();
  if (std::filesystem::exists(config_path) && !std::filesystem::remove(config_path, ec))
    AMLQ_FAIL(Output, "{}: cannot remove the old file: {}", config_path, ec.message());

  const SyntheticModel model(config, o.seed);
  std::vector<TensorDecl> decls;
  for (const auto& t : model.tensors()) decls.push_back({t.name, o.dtype, t.shape});
  ShardedSafetensorsWriter::Options wo;
  wo.max_shard_bytes = o.shard_bytes;
  wo.sync = o.sync;
  ShardedSafetensorsWriter writer(o.out, std::move(decls), wo);

  struct Block {
    size_t tensor;
    int64_t row_begin, row_end;
  };
  std::vector<Block> blocks;
  const size_t width = dtype_size(o.dtype);
  for (size_t i = 0; i < model.tensors().size(); ++i) {
    const auto& t = model.tensors()[i];
    const uint64_t row_bytes = static_cast<uint64_t>(t.cols()) * width;
    const int64_t rows_per_block = std::max<int64_t>(1, static_cast<int64_t>(kBlockBytes / row_bytes));
    for (int64_t r = 0; r < t.rows(); r += rows_per_block)
      blocks.push_back({i, r, std::min(t.rows(), r + rows_per_block)});
  }

  std::atomic<uint64_t> done{0};
  std::mutex progress_mutex;
  const uint64_t total = writer.total_bytes();
  parallel_for(static_cast<int>(blocks.size()), o.threads, [&](int b) {
    const Block& block = blocks[static_cast<size_t>(b)];
    const auto& t = model.tensors()[block.tensor];
    const int64_t cols = t.cols();
    thread_local std::vector<float> values;
    thread_local std::vector<std::byte> bytes;
    bytes.resize(static_cast<size_t>((block.row_end - block.row_begin) * cols) * width);
    const int64_t rows_per_chunk = std::max<int64_t>(1, kChunkFloats / cols);
    for (int64_t r = block.row_begin; r < block.row_end; r += rows_per_chunk) {
      const int64_t r_end = std::min(block.row_end, r + rows_per_chunk);
      values.resize(static_cast<size_t>((r_end - r) * cols));
      model.generate(block.tensor, r, r_end, values.data());
      convert_from_f32(o.dtype, values.data(), values.size(),
                       bytes.data() + static_cast<size_t>((r - block.row_begin) * cols) * width);
    }
    writer.write(block.tensor, static_cast<uint64_t>(block.row_begin * cols) * width, bytes);
    const uint64_t now = done += bytes.size();
    if (progress) {
      std::lock_guard lock(progress_mutex);
      progress(now, total);
    }
  });
  writer.finish();
  write_text_atomic(config_path, config_json.dump(2) + "\n");

  WriteSummary s;
  s.bytes = writer.total_bytes();
  s.shards = writer.shards().size();
  s.seconds = timer.seconds();
  s.parameters = count_parameters(config).total();
  return s;
}

}  // namespace amlq::synthetic
