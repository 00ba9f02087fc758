// The low-rank factors of a 2-layer synthetic model written as a PEFT LoRA
// adapter, checked against an adapter written out by hand: PEFT's file names,
// config fields, tensor names, shapes, dtypes and values (lora_A = B, lora_B = A,
// every module's alpha / r exactly 1).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "core/fp16.h"
#include "export/lowrank_adapter.h"
#include "io/safetensors.h"
#include "quant/pack.h"
#include "tests/model/synthetic_model.h"
#include "tests/test_util.h"

namespace amlq {
namespace {

std::vector<uint16_t> random_fp16(std::mt19937& rng, size_t n) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<uint16_t> v(n);
  for (auto& x : v) x = float_to_fp16(u(rng));
  return v;
}

// Every linear of synthetic_config(2); factors on three of them.
std::vector<PackedLinear> adapted_layers() {
  const ModelConfig config = test::synthetic_config(2);
  std::mt19937 rng(5);
  std::vector<PackedLinear> layers;
  for (int layer = 0; layer < 2; ++layer)
    for (const auto& spec : decoder_linears(config)) {
      PackedLinear l;
      l.name = layer_tensor_name(layer, spec.name);
      l.rows = spec.rows;
      l.cols = spec.cols;
      layers.push_back(l);
    }
  auto fp16_factors = [&](PackedLinear& l, int rank) {
    l.rank = rank;
    l.lowrank = LowRankMethod::Whiten;
    l.factor_format = FactorFormat::Fp16;
    l.a_fp16 = random_fp16(rng, static_cast<size_t>(l.rows) * rank);
    l.b_fp16 = random_fp16(rng, static_cast<size_t>(rank) * l.cols);
  };
  fp16_factors(layers[0], 2);  // model.layers.0.self_attn.q_proj
  fp16_factors(layers[8], 1);  // model.layers.1.self_attn.k_proj
  // model.layers.1.mlp.down_proj: int8 factors with power-of-two scales, exact in fp16.
  PackedLinear& down = layers[13];
  down.rank = 3;
  down.lowrank = LowRankMethod::L2qer;
  down.factor_format = FactorFormat::Int8;
  std::uniform_int_distribution<int> q(-127, 127);
  for (int i = 0; i < down.rows * 3; ++i) down.a_int8.push_back(static_cast<int8_t>(q(rng)));
  for (int i = 0; i < 3 * down.cols; ++i) down.b_int8.push_back(static_cast<int8_t>(q(rng)));
  down.a_scales.assign(static_cast<size_t>(down.rows), float_to_fp16(1.0f / 256));
  down.b_scales = {float_to_fp16(1.0f / 64), float_to_fp16(1.0f / 128), float_to_fp16(1.0f / 32)};
  return layers;
}

const char* kExpectedConfig = R"({
  "peft_type": "LORA",
  "task_type": "CAUSAL_LM",
  "base_model_name_or_path": "/models/synthetic-gptq",
  "r": 3,
  "lora_alpha": 3,
  "rank_pattern": {
    "model.layers.0.self_attn.q_proj": 2,
    "model.layers.1.self_attn.k_proj": 1,
    "model.layers.1.mlp.down_proj": 3
  },
  "alpha_pattern": {
    "model.layers.0.self_attn.q_proj": 2,
    "model.layers.1.self_attn.k_proj": 1,
    "model.layers.1.mlp.down_proj": 3
  },
  "target_modules": [
    "model.layers.0.self_attn.q_proj",
    "model.layers.1.self_attn.k_proj",
    "model.layers.1.mlp.down_proj"
  ],
  "lora_dropout": 0.0,
  "bias": "none",
  "fan_in_fan_out": false,
  "use_rslora": false,
  "use_dora": false,
  "modules_to_save": null,
  "layers_to_transform": null,
  "layers_pattern": null,
  "init_lora_weights": true,
  "inference_mode": true,
  "revision": null
})";

struct ExpectedTensor {
  const char* name;
  std::vector<int64_t> shape;
};
// synthetic_config: hidden 32, intermediate 48, 2 kv heads of 8 (k_proj 16 x 32).
const std::vector<ExpectedTensor> kExpectedTensors = {
    {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", {2, 32}},
    {"base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", {32, 2}},
    {"base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight", {1, 32}},
    {"base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight", {16, 1}},
    {"base_model.model.model.layers.1.mlp.down_proj.lora_A.weight", {3, 48}},
    {"base_model.model.model.layers.1.mlp.down_proj.lora_B.weight", {32, 3}},
};

std::vector<uint16_t> fp16_of(const SafetensorsFile& f, const std::string& name) {
  const auto raw = f.raw(name);
  std::vector<uint16_t> v(raw.size() / 2);
  std::memcpy(v.data(), raw.data(), raw.size());
  return v;
}

TEST(LowRankAdapter, MatchesTheHandWrittenPeftAdapter) {
  test::TempDir tmp;
  const auto layers = adapted_layers();
  const std::string dir = tmp.file("lowrank-adapter");
  int loads = 0;
  ASSERT_TRUE(write_lowrank_adapter(dir, layers, [&](size_t i) { ++loads; return layers[i]; },
                                    "/models/synthetic-gptq"));
  EXPECT_EQ(loads, 3);  // each adapted module read once, no other

  std::ifstream in(dir + "/adapter_config.json");
  ASSERT_TRUE(in) << "no adapter_config.json";
  const auto config = nlohmann::json::parse(in);
  EXPECT_EQ(config, nlohmann::json::parse(kExpectedConfig)) << config.dump(2);

  const auto file = SafetensorsFile::open(dir + "/adapter_model.safetensors");
  ASSERT_EQ(file->tensors().size(), kExpectedTensors.size());
  for (const auto& t : kExpectedTensors) {
    ASSERT_TRUE(file->has(t.name)) << t.name;
    EXPECT_EQ(file->info(t.name).dtype, DType::F16) << t.name;
    EXPECT_EQ(file->info(t.name).shape, t.shape) << t.name;
  }
  // lora_A is B (rank x in), lora_B is A (out x rank), bit for bit.
  EXPECT_EQ(fp16_of(*file, kExpectedTensors[0].name), layers[0].b_fp16);
  EXPECT_EQ(fp16_of(*file, kExpectedTensors[1].name), layers[0].a_fp16);
  EXPECT_EQ(fp16_of(*file, kExpectedTensors[2].name), layers[8].b_fp16);
  EXPECT_EQ(fp16_of(*file, kExpectedTensors[3].name), layers[8].a_fp16);
  const LowRankFactors down = unpack_factors(layers[13]);  // int8 -> exact fp16 here
  const auto down_b = fp16_of(*file, kExpectedTensors[4].name), down_a = fp16_of(*file, kExpectedTensors[5].name);
  for (Eigen::Index i = 0; i < down.b.size(); ++i) EXPECT_EQ(fp16_to_float(down_b[i]), down.b.data()[i]);
  for (Eigen::Index i = 0; i < down.a.size(); ++i) EXPECT_EQ(fp16_to_float(down_a[i]), down.a.data()[i]);

  // PEFT's forward with these settings, lora_B(lora_A(x)) * alpha / r, is A (B x).
  for (const auto& [module, rank] : config["rank_pattern"].items())
    EXPECT_EQ(config["alpha_pattern"][module].get<double>() / rank.get<double>(), 1.0) << module;
  EXPECT_EQ(config["lora_alpha"].get<double>() / config["r"].get<double>(), 1.0);  // vLLM's one scale

  // amlq's reader gives the factors back.
  std::map<std::string, std::pair<int, int>> shapes;
  for (const auto& l : layers) shapes[l.name] = {l.rows, l.cols};
  const LowRankAdapter back = read_lowrank_adapter(dir, shapes);
  ASSERT_EQ(back.modules.size(), 3u);
  EXPECT_EQ(back.inexact_modules, 0);
  EXPECT_EQ(back.modules.at("model.layers.0.self_attn.q_proj").a_fp16, layers[0].a_fp16);
  EXPECT_EQ(back.modules.at("model.layers.1.self_attn.k_proj").b_fp16, layers[8].b_fp16);
  EXPECT_EQ(back.modules.at("model.layers.1.mlp.down_proj").rank, 3);
}

TEST(LowRankAdapter, NoFactorsWritesNothing) {
  test::TempDir tmp;
  auto layers = adapted_layers();
  for (auto& l : layers) l.rank = 0;
  EXPECT_FALSE(write_lowrank_adapter(tmp.file("a"), layers, [&](size_t i) { return layers[i]; }, "x"));
  EXPECT_FALSE(std::filesystem::exists(tmp.file("a")));
}

TEST(LowRankAdapter, ReaderAppliesPeftScalesAndRefusesForeignModules) {
  test::TempDir tmp;
  const auto layers = adapted_layers();
  const std::string dir = tmp.file("adapter");
  write_lowrank_adapter(dir, layers, [&](size_t i) { return layers[i]; }, "base");
  // A peer's adapter: alpha 2r for q_proj (scale 2): A doubles (exact in fp16).
  auto config = nlohmann::json::parse(std::ifstream(dir + "/adapter_config.json"));
  config["alpha_pattern"]["model.layers.0.self_attn.q_proj"] = 4;
  std::ofstream(dir + "/adapter_config.json") << config.dump();
  std::map<std::string, std::pair<int, int>> shapes;
  for (const auto& l : layers) shapes[l.name] = {l.rows, l.cols};
  const auto back = read_lowrank_adapter(dir, shapes);
  const auto& a = back.modules.at("model.layers.0.self_attn.q_proj").a_fp16;
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(fp16_to_float(a[i]), 2.0f * fp16_to_float(layers[0].a_fp16[i]));

  shapes.erase("model.layers.1.mlp.down_proj");
  try {
    read_lowrank_adapter(dir, shapes);
    FAIL() << "accepted an adapter for a module the model lacks";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.1.mlp.down_proj"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("adapter_model.safetensors"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace amlq
