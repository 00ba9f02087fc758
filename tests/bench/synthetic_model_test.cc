#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "backend/backend.h"
#include "bench/synthetic/synthetic_model.h"
#include "core/error.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "model/forward.h"
#include "model/model_weights.h"
#include "model/rope.h"
#include "tests/test_util.h"

namespace amlq {
namespace {

namespace fs = std::filesystem;
using synthetic::SyntheticOptions;

ModelConfig preset_config(const std::string& preset, SyntheticOptions o = {}) {
  o.preset = preset;
  return parse_model_config(synthetic::synthetic_config_json(o).dump(), preset);
}

struct Expected {
  const char* preset;
  const char* model_type;
  int layers, hidden, intermediate, heads, kv_heads, head_dim, vocab, max_position;
  double rope_theta;
  RopeScaling::Type rope;
  double rope_factor;
  bool qkv_bias;
  int bos, eos;
};

// The published config.json values, written out independently of the preset code.
const Expected kExpected[] = {
    {"llama2-7b", "llama", 32, 4096, 11008, 32, 32, 128, 32000, 4096, 1e4, RopeScaling::Type::None, 1, false, 1, 2},
    {"llama2-70b", "llama", 80, 8192, 28672, 64, 8, 128, 32000, 4096, 1e4, RopeScaling::Type::None, 1, false, 1, 2},
    {"llama3-8b", "llama", 32, 4096, 14336, 32, 8, 128, 128256, 8192, 5e5, RopeScaling::Type::None, 1, false, 128000,
     128001},
    {"llama3-70b", "llama", 80, 8192, 28672, 64, 8, 128, 128256, 8192, 5e5, RopeScaling::Type::None, 1, false, 128000,
     128001},
    {"llama3.1-8b", "llama", 32, 4096, 14336, 32, 8, 128, 128256, 131072, 5e5, RopeScaling::Type::Llama3, 8, false,
     128000, 128001},
    {"llama3.1-70b", "llama", 80, 8192, 28672, 64, 8, 128, 128256, 131072, 5e5, RopeScaling::Type::Llama3, 8, false,
     128000, 128001},
    {"qwen2-72b", "qwen2", 80, 8192, 29568, 64, 8, 128, 152064, 131072, 1e6, RopeScaling::Type::None, 1, true, 151643,
     151643},
    {"mistral-7b", "mistral", 32, 4096, 14336, 32, 8, 128, 32000, 32768, 1e4, RopeScaling::Type::None, 1, false, 1, 2},
};

TEST(SyntheticPresets, EveryPresetParsesWithItsRealShapes) {
  ASSERT_EQ(synthetic::presets().size(), std::size(kExpected));
  for (const Expected& e : kExpected) {
    SCOPED_TRACE(e.preset);
    const ModelConfig c = preset_config(e.preset);
    EXPECT_EQ(c.model_type, e.model_type);
    EXPECT_EQ(c.num_layers, e.layers);
    EXPECT_EQ(c.hidden_size, e.hidden);
    EXPECT_EQ(c.intermediate_size, e.intermediate);
    EXPECT_EQ(c.num_heads, e.heads);
    EXPECT_EQ(c.num_kv_heads, e.kv_heads);
    EXPECT_EQ(c.head_dim, e.head_dim);
    EXPECT_EQ(c.vocab_size, e.vocab);
    EXPECT_EQ(c.max_position, e.max_position);
    EXPECT_EQ(c.rope_theta, e.rope_theta);
    EXPECT_EQ(c.rope_scaling.type, e.rope);
    EXPECT_EQ(c.rope_scaling.factor, e.rope_factor);
    EXPECT_EQ(c.rms_norm_eps, 1e-5);
    EXPECT_FALSE(c.tie_word_embeddings);
    EXPECT_EQ(c.qkv_bias, e.qkv_bias);
    EXPECT_EQ(c.bos_token_id, e.bos);
    EXPECT_EQ(c.eos_token_id, e.eos);
    if (e.rope == RopeScaling::Type::Llama3) {
      EXPECT_EQ(c.rope_scaling.low_freq_factor, 1.0);
      EXPECT_EQ(c.rope_scaling.high_freq_factor, 4.0);
      EXPECT_EQ(c.rope_scaling.original_max_position, 8192);
    }
    // The linears amlq quantizes, (rows = out, cols = in).
    const int q = e.heads * e.head_dim, kv = e.kv_heads * e.head_dim;
    const std::vector<std::pair<int, int>> shapes{
        {q, e.hidden},           {kv, e.hidden},           {kv, e.hidden},           {e.hidden, q},
        {e.intermediate, e.hidden}, {e.intermediate, e.hidden}, {e.hidden, e.intermediate}};
    const auto linears = decoder_linears(c);
    ASSERT_EQ(linears.size(), shapes.size());
    for (size_t i = 0; i < shapes.size(); ++i) {
      EXPECT_EQ(linears[i].rows, shapes[i].first) << linears[i].name;
      EXPECT_EQ(linears[i].cols, shapes[i].second) << linears[i].name;
      EXPECT_EQ(linears[i].has_bias, e.qkv_bias && i < 3) << linears[i].name;
    }
  }
}

TEST(SyntheticPresets, ParameterCountsMatchThePublishedModels) {
  // 6.74B, 68.98B, 8.03B, 70.55B, 72.71B, 7.24B parameters.
  EXPECT_EQ(count_parameters(preset_config("llama2-7b")).total(), 6738415616);
  EXPECT_EQ(count_parameters(preset_config("llama2-70b")).total(), 68976648192);
  EXPECT_EQ(count_parameters(preset_config("llama3-8b")).total(), 8030261248);
  EXPECT_EQ(count_parameters(preset_config("llama3-70b")).total(), 70553706496);
  EXPECT_EQ(count_parameters(preset_config("qwen2-72b")).total(), 72706203648);
  EXPECT_EQ(count_parameters(preset_config("mistral-7b")).total(), 7241732096);
}

TEST(SyntheticPresets, OptionsOverrideSingleFields) {
  SyntheticOptions o;
  o.layers = 2;
  o.dtype = DType::BF16;
  const auto j = synthetic::synthetic_config_json([&] {
    auto x = o;
    x.preset = "llama2-70b";
    return x;
  }());
  EXPECT_EQ(j["num_hidden_layers"], 2);
  EXPECT_EQ(j["hidden_size"], 8192);
  EXPECT_EQ(j["torch_dtype"], "bfloat16");
  EXPECT_EQ(j["architectures"][0], "LlamaForCausalLM");

  o.vocab = 1000;  // smaller than llama3's bos/eos ids: they move inside the vocabulary
  o.hidden = 512;
  o.heads = 8;
  o.kv_heads = 2;
  const ModelConfig c = preset_config("llama3-8b", o);
  EXPECT_EQ(c.vocab_size, 1000);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_LT(c.bos_token_id, 1000);
  EXPECT_LT(c.eos_token_id, 1000);
  EXPECT_EQ(c.rope_theta, 5e5);

  SyntheticOptions bad;
  bad.preset = "llama2-7b";
  bad.hidden = 1000;  // not a multiple of 32 heads
  try {
    synthetic::synthetic_config_json(bad);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Usage);
  }
  bad.hidden = 0;
  bad.preset = "llama5-1t";
  try {
    synthetic::synthetic_config_json(bad);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Usage);
    EXPECT_NE(std::string(e.what()).find("llama2-70b"), std::string::npos) << e.what();
  }
}

TEST(SyntheticModel, TensorsAreNamedAndOrderedAsTheHfStateDict) {
  SyntheticOptions o;
  o.layers = 1;
  o.hidden = 64;
  o.heads = 4;
  o.kv_heads = 2;
  o.intermediate = 96;
  o.vocab = 100;
  const synthetic::SyntheticModel m(preset_config("qwen2-72b", o), 1);
  std::vector<std::string> names;
  for (const auto& t : m.tensors()) names.push_back(t.name);
  const std::vector<std::string> expected{
      "model.embed_tokens.weight",
      "model.layers.0.self_attn.q_proj.weight",
      "model.layers.0.self_attn.q_proj.bias",
      "model.layers.0.self_attn.k_proj.weight",
      "model.layers.0.self_attn.k_proj.bias",
      "model.layers.0.self_attn.v_proj.weight",
      "model.layers.0.self_attn.v_proj.bias",
      "model.layers.0.self_attn.o_proj.weight",
      "model.layers.0.mlp.gate_proj.weight",
      "model.layers.0.mlp.up_proj.weight",
      "model.layers.0.mlp.down_proj.weight",
      "model.layers.0.input_layernorm.weight",
      "model.layers.0.post_attention_layernorm.weight",
      "model.norm.weight",
      "lm_head.weight",
  };
  EXPECT_EQ(names, expected);
  EXPECT_EQ(m.tensors()[1].shape, (std::vector<int64_t>{64, 64}));
  EXPECT_EQ(m.tensors()[4].shape, (std::vector<int64_t>{32}));
}

// RMS of column c of a rows x cols row-major matrix.
double column_rms(const std::vector<float>& w, int64_t rows, int64_t cols, int64_t c) {
  double s = 0;
  for (int64_t r = 0; r < rows; ++r) s += static_cast<double>(w[r * cols + c]) * w[r * cols + c];
  return std::sqrt(s / rows);
}
double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}
double rms(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return std::sqrt(s / v.size());
}

TEST(SyntheticModel, WeightsHaveHeavyTailsOutlierChannelsAndDrift) {
  SyntheticOptions o;
  o.layers = 4;
  o.hidden = 512;
  o.heads = 8;
  o.kv_heads = 2;
  o.intermediate = 4096;
  o.vocab = 300;
  const synthetic::SyntheticModel m(preset_config("llama3-8b", o), 3);
  const auto& out = m.outliers();
  ASSERT_EQ(out.hidden.size(), 2u);  // max(2, 512 / 2048)
  ASSERT_EQ(out.intermediate.at(2).size(), 2u);  // max(2, 4096 / 2048)
  auto index = [&](const std::string& name) {
    for (size_t i = 0; i < m.tensors().size(); ++i)
      if (m.tensors()[i].name == name) return i;
    ADD_FAILURE() << "no tensor " << name;
    return size_t{0};
  };

  // Heavy tails: excess kurtosis well above the Gaussian's 0 (t(5): 6).
  const auto q = m.generate(index("model.layers.1.self_attn.q_proj.weight"));
  double m2 = 0, m4 = 0;
  for (float x : q) {
    m2 += static_cast<double>(x) * x;
    m4 += static_cast<double>(x) * x * x * x;
  }
  m2 /= q.size();
  m4 /= q.size();
  EXPECT_GT(m4 / (m2 * m2), 6.0);
  EXPECT_TRUE(std::all_of(q.begin(), q.end(), [](float x) { return std::isfinite(x); }));

  // Outlier input columns of q_proj are larger than the typical column (by
  // outlier_column_scale, capped at this small width so they carry at most
  // half the output variance) ...
  const size_t q_index = index("model.layers.1.self_attn.q_proj.weight");
  const double q_outlier_scale = m.outlier_column_scale(q_index);
  EXPECT_GT(q_outlier_scale, 1.3);
  std::vector<double> cols;
  for (int c = 0; c < 512; ++c) cols.push_back(column_rms(q, 512, 512, c));
  const double typical = median(cols);
  for (int c : out.hidden) {
    EXPECT_GT(cols[c] / typical, 0.6 * q_outlier_scale) << c;
    EXPECT_LT(cols[c] / typical, 1.6 * q_outlier_scale) << c;
  }
  // ... and the RMSNorm in front of it is ~6x larger there.
  const auto norm = m.generate(index("model.layers.1.input_layernorm.weight"));
  std::vector<double> nv(norm.begin(), norm.end());
  const double norm_typical = median(nv);
  for (int c : out.hidden) EXPECT_GT(norm[c] / norm_typical, 4.0) << c;
  EXPECT_TRUE(std::all_of(norm.begin(), norm.end(), [](float x) { return x > 0; }));

  // down_proj: outlier columns at the intermediate outlier channels.
  const size_t down_index = index("model.layers.2.mlp.down_proj.weight");
  const auto down = m.generate(down_index);
  std::vector<double> dcols;
  for (int c = 0; c < 4096; ++c) dcols.push_back(column_rms(down, 512, 4096, c));
  const double dtypical = median(dcols);
  EXPECT_GT(m.outlier_column_scale(down_index), 1.5);
  for (int c : out.intermediate[2]) EXPECT_GT(dcols[c] / dtypical, 0.6 * m.outlier_column_scale(down_index)) << c;

  // Drift: the last layer's weights are ~1.25 / 0.8 = 1.56x the first's.
  const double first = rms(m.generate(index("model.layers.0.self_attn.o_proj.weight")));
  const double last = rms(m.generate(index("model.layers.3.self_attn.o_proj.weight")));
  EXPECT_GT(last / first, 1.3);
  EXPECT_LT(last / first, 1.9);

  // Row blocks equal the whole tensor's rows: generation is per element.
  std::vector<float> block(static_cast<size_t>(7 * 512));
  m.generate(index("model.layers.1.self_attn.q_proj.weight"), 100, 107, block.data());
  EXPECT_TRUE(std::equal(block.begin(), block.end(), q.begin() + 100 * 512));
}

// The cap on the outlier columns' share of the output variance is for small
// test shapes; at the presets' shapes it binds rarely and mildly.
TEST(SyntheticModel, PresetShapesKeepNearlyTheFullOutlierColumnScale) {
  for (const char* preset : {"llama2-7b", "llama2-70b", "llama3-8b", "qwen2-72b", "mistral-7b"}) {
    SCOPED_TRACE(preset);
    SyntheticOptions o;
    o.layers = 2;
    const synthetic::SyntheticModel m(preset_config(preset, o), 1);
    int linears = 0, full = 0;
    for (size_t i = 0; i < m.tensors().size(); ++i) {
      if (m.tensors()[i].shape.size() != 2 || m.tensors()[i].name.find("layers.") == std::string::npos) continue;
      const double scale = m.outlier_column_scale(i);
      EXPECT_GE(scale, 0.8 * m.stats().outlier_column_scale) << m.tensors()[i].name;
      full += scale == m.stats().outlier_column_scale;
      ++linears;
    }
    EXPECT_EQ(linears, 14);
    EXPECT_GE(full, 12);
  }
}

std::map<std::string, std::string> read_dir(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::ifstream in(e.path(), std::ios::binary);
    out[e.path().filename().string()] = std::string(std::istreambuf_iterator<char>(in), {});
  }
  return out;
}

SyntheticOptions tiny(const std::string& out, int layers = 2) {
  SyntheticOptions o;
  o.out = out;
  o.preset = "llama3-8b";
  o.layers = layers;
  o.hidden = 256;
  o.heads = 4;
  o.kv_heads = 2;
  o.intermediate = 512;
  o.vocab = 1000;
  o.sync = false;
  return o;
}

TEST(SyntheticModel, BytesDoNotDependOnTheThreadCount) {
  test::TempDir dir;
  SyntheticOptions a = tiny(dir.file("a")), b = tiny(dir.file("b"));
  a.threads = 1;
  b.threads = 3;
  a.shard_bytes = b.shard_bytes = 300'000;
  const auto sa = synthetic::write_synthetic_model(a);
  synthetic::write_synthetic_model(b);
  EXPECT_GT(sa.shards, 3u);
  const auto fa = read_dir(a.out), fb = read_dir(b.out);
  ASSERT_EQ(fa.size(), sa.shards + 2);  // + index + config.json
  EXPECT_TRUE(fa.count("config.json") && fa.count("model.safetensors.index.json"));
  EXPECT_TRUE(fa == fb);

  SyntheticOptions c = tiny(dir.file("c"));
  c.seed = 2;
  c.shard_bytes = a.shard_bytes;
  synthetic::write_synthetic_model(c);
  const auto fc = read_dir(c.out);
  ASSERT_EQ(fc.size(), fa.size());
  for (const auto& [name, bytes] : fa) {
    if (name.ends_with(".safetensors")) {
      EXPECT_NE(fc.at(name), bytes) << name;
    }
  }
}

// The forward pass through many layers stays finite, and the captured inputs
// (what the Hessians are built from) have the outlier channels.
TEST(SyntheticModel, ActivationsStayFiniteAndHessiansGetLargeDiagonals) {
  test::TempDir dir;
  SyntheticOptions o = tiny(dir.file("m"), 24);
  o.hidden = 512;
  o.intermediate = 1024;
  o.heads = 8;
  o.kv_heads = 4;
  o.shard_bytes = 20'000'000;
  synthetic::write_synthetic_model(o);
  const ModelWeights w = load_model_weights(o.out);
  const synthetic::SyntheticModel m(w.config, o.seed);
  auto backend = make_backend("cpu");
  const int batch = 2, seqlen = 64;
  std::mt19937 rng(5);
  std::vector<int32_t> ids(batch * seqlen);
  for (auto& id : ids) id = static_cast<int32_t>(rng() % 1000);
  MatrixF hidden = embed(w, ids);
  const RopeTables rope = make_rope_tables(w.config, seqlen);
  // Energy (the Hessian diagonal: sum over tokens of x_c^2) of the given
  // channels relative to the median channel: the smallest and the largest.
  auto energy_ratios = [](const MatrixF& x, const std::vector<int>& channels) {
    std::vector<double> e(static_cast<size_t>(x.cols()));
    for (Eigen::Index c = 0; c < x.cols(); ++c) e[c] = x.col(c).cast<double>().squaredNorm();
    const double typical = median(e);
    double lowest = 1e300, highest = 0;
    for (int c : channels) {
      lowest = std::min(lowest, e[c] / typical);
      highest = std::max(highest, e[c] / typical);
    }
    return std::pair{lowest, highest};
  };
  std::vector<double> attn_in, mlp_in, mlp_out;
  for (int l = 0; l < w.config.num_layers; ++l) {
    SCOPED_TRACE(l);
    LayerInputs in;
    decoder_layer_forward(*backend, w.config, w.layers[l], rope, hidden, batch, seqlen, &in);
    ASSERT_TRUE(hidden.allFinite());
    const double r = std::sqrt(hidden.cast<double>().squaredNorm() / hidden.size());
    EXPECT_LT(r, 10.0);
    EXPECT_GT(r, 1e-2);
    attn_in.push_back(energy_ratios(in.attn_in, m.outliers().hidden).first);
    mlp_in.push_back(energy_ratios(in.mlp_in, m.outliers().hidden).first);
    mlp_out.push_back(energy_ratios(in.mlp_out, m.outliers().intermediate[l]).second);
  }
  // The outlier hidden channels stand out in every layer's q/k/v and gate/up
  // inputs, typically by ~50-150x; how much varies with depth, as the channel
  // energies of the residual stream spread (5th-95th percentile ~0.1x-5x the
  // median here). The MLP's outlier channels go through silu, whose effect
  // depends on the sign of each channel's mean, so only their typical layer is
  // checked.
  EXPECT_GT(*std::min_element(attn_in.begin(), attn_in.end()), 5.0);
  EXPECT_GT(*std::min_element(mlp_in.begin(), mlp_in.end()), 5.0);
  EXPECT_GT(median(attn_in), 40.0);
  EXPECT_GT(median(mlp_in), 40.0);
  EXPECT_GT(median(mlp_out), 10.0);
  MatrixF logits;
  final_logits(*backend, w, hidden, logits);
  EXPECT_TRUE(logits.allFinite());
}

TEST(MakeSyntheticModel, ShardedCheckpointRunsThroughInspectAndEval) {
  test::TempDir dir;
  const std::string model = dir.file("model"), ids = dir.file("ids.u32");
  const auto made = test::run_shell(std::string(AMLQ_MAKE_SYNTHETIC_MODEL) + " --out " + model +
                                    " --preset llama2-7b --layers 2 --hidden 256 --intermediate 688 --heads 4"
                                    " --kv-heads 4 --vocab 2000 --shard-size 1MB --no-sync --calib-ids " +
                                    ids + " --calib-tokens 512");
  ASSERT_EQ(made.exit_code, 0) << made.output;
  EXPECT_NE(made.output.find("GB/s"), std::string::npos) << made.output;
  // 5.2 MB in shards of at most 1 MB (the 1.02 MB embedding alone in one).
  std::set<std::string> files;
  for (const auto& e : fs::directory_iterator(model)) files.insert(e.path().filename().string());
  EXPECT_TRUE(files.count("config.json") && files.count("model.safetensors.index.json"));
  const auto index = nlohmann::json::parse(std::ifstream(model + "/model.safetensors.index.json"));
  std::set<std::string> shards;
  for (const auto& [tensor, file] : index["weight_map"].items()) shards.insert(file.get<std::string>());
  EXPECT_GE(shards.size(), 6u);
  EXPECT_EQ(files.size(), shards.size() + 2);
  std::map<std::string, int> tensors_in;
  for (const auto& [tensor, file] : index["weight_map"].items()) ++tensors_in[file.get<std::string>()];
  for (const auto& shard : shards) {
    EXPECT_TRUE(files.count(shard)) << shard;
    EXPECT_TRUE(shard.ends_with(fmt::format("-of-{:05d}.safetensors", shards.size()))) << shard;
    // Only a tensor larger than the limit makes a shard larger than 1 MB (plus its header).
    if (tensors_in[shard] > 1) {
      EXPECT_LT(fs::file_size(model + "/" + shard), 1'004'096u) << shard;
    }
  }

  const auto inspect = test::run_amlq("inspect " + model);
  ASSERT_EQ(inspect.exit_code, 0) << inspect.output;
  EXPECT_NE(inspect.output.find("2 decoder layers x 7 linears"), std::string::npos) << inspect.output;

  const auto eval = test::run_amlq("eval " + model + " --data " + ids + " --seqlen 64 --max-windows 4 --json");
  ASSERT_EQ(eval.exit_code, 0) << eval.output;
  const auto json = nlohmann::json::parse(eval.output.substr(eval.output.find('{')));
  EXPECT_EQ(json["windows"], 4);
  EXPECT_TRUE(std::isfinite(json["perplexity"].get<double>()));
  EXPECT_GT(json["perplexity"].get<double>(), 1.0);

  // Bad options: usage errors (exit code 2) naming the problem, nothing written.
  const auto bad = test::run_shell(std::string(AMLQ_MAKE_SYNTHETIC_MODEL) + " --out " + dir.file("bad") +
                                   " --preset llama2-7b --shard-size 5XB");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("--shard-size"), std::string::npos) << bad.output;
  EXPECT_FALSE(fs::exists(dir.file("bad")));
}

}  // namespace
}  // namespace amlq
