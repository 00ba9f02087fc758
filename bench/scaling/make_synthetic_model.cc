// Writes a seeded random Llama-architecture checkpoint (config.json + F32
// model.safetensors) for the scaling benchmark, and optionally random
// calibration ids (.u32, uint32 little-endian):
//   make_synthetic_model --out DIR [--layers 8] [--hidden 1024] [--intermediate 2816]
//                        [--heads 16] [--kv-heads 4] [--vocab 512] [--seed 1]
//                        [--calib-ids FILE --calib-tokens N]
// Linear weights are N(0, 1/fan_in) so activations keep their scale through the
// layers; norms are 1. The model is meaningless but has the shapes and costs of
// a real one, which is all a timing run needs.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"
#include "io/model_config.h"
#include "io/safetensors.h"

namespace amlq {
namespace {

struct SyntheticOptions {
  std::string out;
  int layers = 8;
  int hidden = 1024;
  int intermediate = 2816;
  int heads = 16;
  int kv_heads = 4;
  int vocab = 512;
  uint64_t seed = 1;
  std::string calib_ids;
  int64_t calib_tokens = 16384;
};

nlohmann::ordered_json config_json(const SyntheticOptions& o) {
  nlohmann::ordered_json j;
  j["architectures"] = {"LlamaForCausalLM"};
  j["model_type"] = "llama";
  j["hidden_size"] = o.hidden;
  j["intermediate_size"] = o.intermediate;
  j["num_hidden_layers"] = o.layers;
  j["num_attention_heads"] = o.heads;
  j["num_key_value_heads"] = o.kv_heads;
  j["head_dim"] = o.hidden / o.heads;
  j["vocab_size"] = o.vocab;
  j["max_position_embeddings"] = 2048;
  j["rms_norm_eps"] = 1e-5;
  j["rope_theta"] = 10000.0;
  j["rope_scaling"] = nullptr;
  j["hidden_act"] = "silu";
  j["tie_word_embeddings"] = false;
  j["attention_bias"] = false;
  j["mlp_bias"] = false;
  j["bos_token_id"] = 1;
  j["eos_token_id"] = 2;
  j["torch_dtype"] = "float32";
  return j;
}

void validate(const SyntheticOptions& o) {
  if (o.out.empty()) AMLQ_FAIL(Usage, "--out is required");
  if (o.layers <= 0 || o.hidden <= 0 || o.intermediate <= 0 || o.heads <= 0 || o.kv_heads <= 0 || o.vocab <= 1)
    AMLQ_FAIL(Usage, "--layers, --hidden, --intermediate, --heads, --kv-heads must be positive and --vocab > 1");
  if (o.hidden % o.heads != 0 || (o.hidden / o.heads) % 2 != 0)
    AMLQ_FAIL(Usage, "--hidden {} must be a multiple of --heads {} with an even head_dim", o.hidden, o.heads);
  if (o.heads % o.kv_heads != 0) AMLQ_FAIL(Usage, "--heads {} must be a multiple of --kv-heads {}", o.heads, o.kv_heads);
  if (!o.calib_ids.empty() && o.calib_tokens <= 1) AMLQ_FAIL(Usage, "--calib-tokens must be > 1");
}

class WeightWriter {
 public:
  explicit WeightWriter(uint64_t seed) : rng_(seed) {}

  void gaussian(const std::string& name, int64_t rows, int64_t cols, float stddev) {
    std::normal_distribution<float> dist(0.0f, stddev);
    std::vector<float> data(static_cast<size_t>(rows * cols));
    for (float& x : data) x = dist(rng_);
    writer_.add_f32(name, {rows, cols}, data);
  }
  void ones(const std::string& name, int64_t n) {
    const std::vector<float> data(static_cast<size_t>(n), 1.0f);
    writer_.add_f32(name, {n}, data);
  }
  void write(const std::string& path) const { writer_.write(path); }

 private:
  std::mt19937_64 rng_;
  SafetensorsWriter writer_;
};

void write_model(const SyntheticOptions& o) {
  std::filesystem::create_directories(o.out);
  const nlohmann::ordered_json cfg_json = config_json(o);
  // Validate through amlq's own parser so a bad combination fails here, not in the benchmark.
  const ModelConfig cfg = parse_model_config(cfg_json.dump(), o.out + "/config.json");

  WeightWriter w(o.seed);
  const int64_t h = cfg.hidden_size;
  // Embedding rows feed an RMSNorm, so their scale does not matter; keep them O(1).
  w.gaussian("model.embed_tokens.weight", cfg.vocab_size, h, 1.0f);
  for (int layer = 0; layer < cfg.num_layers; ++layer) {
    w.ones(layer_tensor_name(layer, "input_layernorm.weight"), h);
    w.ones(layer_tensor_name(layer, "post_attention_layernorm.weight"), h);
    for (const LinearSpec& l : decoder_linears(cfg))
      w.gaussian(linear_weight_name(layer, l.name), l.rows, l.cols, 1.0f / std::sqrt(static_cast<float>(l.cols)));
  }
  w.ones("model.norm.weight", h);
  w.gaussian("lm_head.weight", cfg.vocab_size, h, 1.0f / std::sqrt(static_cast<float>(h)));
  w.write(o.out + "/model.safetensors");

  // config.json last: a directory with a config.json is a finished checkpoint.
  AtomicOutput out(o.out + "/config.json");
  {
    std::ofstream f(out.temp_path());
    f << cfg_json.dump(2) << "\n";
    if (!f) AMLQ_FAIL(Output, "{}: cannot write", out.temp_path());
  }
  out.commit();
  const ParameterCount p = count_parameters(cfg);
  fmt::print("{}: llama, {} layers, hidden {}, intermediate {}, {} heads ({} kv), vocab {}: {:.1f}M parameters "
             "({:.1f}M quantized)\n",
             o.out, cfg.num_layers, cfg.hidden_size, cfg.intermediate_size, cfg.num_heads, cfg.num_kv_heads,
             cfg.vocab_size, p.total() / 1e6, p.quantized() / 1e6);
}

void write_calib_ids(const SyntheticOptions& o) {
  std::mt19937_64 rng(o.seed + 1);
  std::uniform_int_distribution<uint32_t> dist(0, static_cast<uint32_t>(o.vocab - 1));
  std::vector<unsigned char> bytes(static_cast<size_t>(o.calib_tokens) * 4);
  for (int64_t i = 0; i < o.calib_tokens; ++i) {
    const uint32_t id = dist(rng);
    for (int b = 0; b < 4; ++b) bytes[static_cast<size_t>(i) * 4 + b] = static_cast<unsigned char>(id >> (8 * b));
  }
  AtomicOutput out(o.calib_ids);
  {
    std::ofstream f(out.temp_path(), std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!f) AMLQ_FAIL(Output, "{}: cannot write", out.temp_path());
  }
  out.commit();
  fmt::print("{}: {} random ids < {}\n", o.calib_ids, o.calib_tokens, o.vocab);
}

}  // namespace
}  // namespace amlq

int main(int argc, char** argv) {
  using namespace amlq;
  SyntheticOptions o;
  CLI::App app{"Write a seeded random Llama checkpoint for benchmarks"};
  app.add_option("--out", o.out, "Checkpoint directory to write")->required();
  app.add_option("--layers", o.layers, "Decoder layers")->capture_default_str();
  app.add_option("--hidden", o.hidden, "Hidden size")->capture_default_str();
  app.add_option("--intermediate", o.intermediate, "MLP intermediate size")->capture_default_str();
  app.add_option("--heads", o.heads, "Attention heads")->capture_default_str();
  app.add_option("--kv-heads", o.kv_heads, "Key/value heads")->capture_default_str();
  app.add_option("--vocab", o.vocab, "Vocabulary size")->capture_default_str();
  app.add_option("--seed", o.seed, "Random seed")->capture_default_str();
  app.add_option("--calib-ids", o.calib_ids, "Also write this many random ids < vocab as .u32 here");
  app.add_option("--calib-tokens", o.calib_tokens, "Number of ids for --calib-ids")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    validate(o);
    write_model(o);
    if (!o.calib_ids.empty()) write_calib_ids(o);
  } catch (const Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return exit_code(e.kind());
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}: {}\n", o.out, e.what());
    return 1;
  }
  return 0;
}
