// `amlq export` end to end on stories260K (label model): the exported
// checkpoints evaluate like the .h5 they came from, and bad input is refused
// with an error naming the file and the layer.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "tests/test_util.h"

namespace amlq {
namespace {

namespace fs = std::filesystem;

std::string model_dir() { return test::shared_path("models/stories260K"); }
std::string calib() { return test::shared_path("data/wikitext2/valid.tok512.u16"); }
std::string eval_data() { return test::shared_path("data/wikitext2/test.tok512.u16"); }

// Quantizes stories260K with --search `search` (small calibration) into `out`.
void quantize(const std::string& search, const std::string& out, const std::string& extra = "") {
  const auto r = test::run_amlq("--log-level warn --threads 1 quantize " + model_dir() + " --calib " + calib() +
                                " --calib-samples 16 --calib-seqlen 128 --search " + search + " --out " + out + " " +
                                extra);
  ASSERT_EQ(r.exit_code, 0) << r.output;
}

double perplexity(const std::string& model) {
  const auto r = test::run_amlq("--log-level warn eval " + model + " --data " + eval_data() + " --max-windows 40 --json");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  if (r.exit_code != 0) return NAN;
  return nlohmann::json::parse(r.output).at("perplexity").get<double>();
}

test::CommandResult export_cmd(const std::string& args) { return test::run_amlq("--log-level warn export " + args); }

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

class ExportStories : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  }
  test::TempDir tmp;
};

TEST_F(ExportStories, GptqWithAdapterEvaluatesLikeTheH5) {
  const std::string h5 = tmp.file("m.h5"), dir = tmp.file("gptq");
  quantize("uniform:4b-g64-r8", h5);
  const auto r = export_cmd(h5 + " --format gptq --out " + dir);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* f : {"config.json", "quantize_config.json", "model.safetensors", "tok512.bin",
                        "lowrank-adapter/adapter_config.json", "lowrank-adapter/adapter_model.safetensors"})
    EXPECT_TRUE(fs::exists(fs::path(dir) / f)) << f << "\n" << r.output;
  const auto q = read_json(fs::path(dir) / "quantize_config.json");
  EXPECT_EQ(q.at("bits"), 4);
  EXPECT_EQ(q.at("group_size"), 64);
  EXPECT_EQ(q.at("desc_act"), true);
  EXPECT_EQ(q.at("quant_method"), "gptq");
  EXPECT_EQ(read_json(fs::path(dir) / "config.json").at("quantization_config"), q);
  EXPECT_NE(r.output.find("not multiples of 32"), std::string::npos) << r.output;  // 172-wide MLP layers

  const double expected = perplexity(h5), got = perplexity(dir);
  EXPECT_LE(std::abs(got - expected) / expected, 1e-6) << "h5 " << expected << ", gptq dir " << got;

  // Without the adapter the model is W_hat alone: a different (worse) model.
  fs::rename(fs::path(dir) / "lowrank-adapter", tmp.file("adapter-aside"));
  EXPECT_GT(std::abs(perplexity(dir) - expected) / expected, 1e-4);
  fs::rename(tmp.file("adapter-aside"), fs::path(dir) / "lowrank-adapter");

  const auto inspect = test::run_amlq("inspect " + dir);
  ASSERT_EQ(inspect.exit_code, 0) << inspect.output;
  EXPECT_NE(inspect.output.find("GPTQ checkpoint"), std::string::npos) << inspect.output;
  EXPECT_NE(inspect.output.find("model.layers.4.mlp.down_proj"), std::string::npos) << inspect.output;
  EXPECT_NE(inspect.output.find("(35 modules)"), std::string::npos) << inspect.output;
}

TEST_F(ExportStories, DequantEvaluatesLikeTheH5InF32AndWithinRoundingInHalfTypes) {
  const std::string h5 = tmp.file("m.h5");
  quantize("uniform:3b-g32-r8", h5);
  const double expected = perplexity(h5);

  ASSERT_EQ(export_cmd(h5 + " --format dequant --dtype f32 --out " + tmp.file("f32")).exit_code, 0);
  EXPECT_TRUE(fs::exists(tmp.file("f32/tok512.bin")));
  const auto cfg = read_json(tmp.file("f32/config.json"));
  EXPECT_EQ(cfg.at("torch_dtype"), "float32");
  EXPECT_FALSE(cfg.contains("quantization_config"));
  const double f32 = perplexity(tmp.file("f32"));
  EXPECT_LE(std::abs(f32 - expected) / expected, 1e-6) << "h5 " << expected << ", dequant f32 " << f32;

  // Sharded: the same tensors, so the same perplexity to the last bit.
  const auto sharded = export_cmd(h5 + " --format dequant --dtype f32 --max-shard-size 300KB --out " + tmp.file("sh"));
  ASSERT_EQ(sharded.exit_code, 0) << sharded.output;
  const auto index = read_json(tmp.file("sh/model.safetensors.index.json"));
  EXPECT_TRUE(fs::exists(tmp.file("sh/model-00001-of-00004.safetensors"))) << index.dump(2);
  EXPECT_EQ(perplexity(tmp.file("sh")), f32);

  // Half types: every weight rounded once. Measured on this model and data:
  // 3.1e-4 (fp16) and 9.8e-4 (bf16) relative perplexity; bounded here at ~10x.
  ASSERT_EQ(export_cmd(h5 + " --format dequant --dtype fp16 --out " + tmp.file("fp16")).exit_code, 0);
  ASSERT_EQ(export_cmd(h5 + " --format dequant --dtype bf16 --out " + tmp.file("bf16")).exit_code, 0);
  EXPECT_EQ(read_json(tmp.file("bf16/config.json")).at("torch_dtype"), "bfloat16");
  const double fp16 = perplexity(tmp.file("fp16")), bf16 = perplexity(tmp.file("bf16"));
  EXPECT_LE(std::abs(fp16 - expected) / expected, 3e-3) << "fp16 " << fp16 << " vs " << expected;
  EXPECT_LE(std::abs(bf16 - expected) / expected, 1e-2) << "bf16 " << bf16 << " vs " << expected;
}

TEST_F(ExportStories, BadInputIsRefusedNamingTheFileAndLayer) {
  const std::string h5 = tmp.file("m.h5");
  // 5 bits (and 4, which --requantize will pick from the measurement table).
  std::ofstream(tmp.file("five.toml")) << "name = \"five\"\nranks = [0]\nbits = [4, 5]\ngroups = [64]\n"
                                          "symmetric = false\nact_order = true\n";
  quantize("uniform:5b-g64", h5, "--recipes " + tmp.file("five.toml"));

  // A layer the format cannot express.
  auto r = export_cmd(h5 + " --format gptq --out " + tmp.file("g"));
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find(h5), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("model.layers.0.self_attn.q_proj, model.layers.0.self_attn.k_proj"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("and 31 more: 5-bit codes"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--requantize"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(tmp.file("g"))) << "a refused export left a directory";

  // --requantize re-runs them at 4 bits (nearest to 5) from regenerated statistics.
  r = export_cmd(h5 + " --format gptq --requantize --out " + tmp.file("g"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("requantized 35 layer(s)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("model.layers.0.self_attn.q_proj 5b-g64 -> 4b-g64"), std::string::npos) << r.output;
  EXPECT_EQ(read_json(tmp.file("g/quantize_config.json")).at("bits"), 4);
  const double five = perplexity(h5), four = perplexity(tmp.file("g"));
  EXPECT_GT(four, five * 0.95) << "4-bit requantized " << four << ", 5-bit " << five;
  EXPECT_LT(four, five * 1.5) << "4-bit requantized " << four << ", 5-bit " << five;

  // An existing non-empty directory without --force.
  r = export_cmd(h5 + " --format dequant --out " + tmp.file("g"));
  EXPECT_EQ(r.exit_code, 5) << r.output;
  EXPECT_NE(r.output.find(tmp.file("g") + ": directory exists and is not empty (pass --force"), std::string::npos)
      << r.output;
  EXPECT_TRUE(fs::exists(tmp.file("g/quantize_config.json"))) << "the refused export touched the directory";
  r = export_cmd(h5 + " --format dequant --force --out " + tmp.file("g"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(fs::exists(tmp.file("g/quantize_config.json"))) << "--force kept the old contents";

  // A file of an unknown format version.
  const std::string newer = tmp.file("newer.h5");
  fs::copy_file(h5, newer);
  {
    const hid_t f = H5Fopen(newer.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    const hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
    ASSERT_GE(a, 0);
    const uint32_t v = 99;
    ASSERT_GE(H5Awrite(a, H5T_NATIVE_UINT32, &v), 0);
    H5Aclose(a);
    H5Fclose(f);
  }
  r = export_cmd(newer + " --format gptq --out " + tmp.file("v"));
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find(newer + ": format_version 99"), std::string::npos) << r.output;
}

TEST_F(ExportStories, MixedPrecisionSearchExportsDynamicRulesAndEvaluatesLikeTheH5) {
  // minmax over the fast space at 3 bpw picks 2, 3 and 4 bits and groups of 32 and
  // 64 (no intra-layer mixes): every layer is expressible, through dynamic rules.
  const std::string h5 = tmp.file("m.h5"), dir = tmp.file("gptq");
  quantize("minmax", h5, "--recipes fast --target-bpw 3.0 --validate-windows 0");  // minmax's own plan
  const auto r = export_cmd(h5 + " --format gptq --json --out " + dir);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto q = read_json(fs::path(dir) / "quantize_config.json");
  ASSERT_TRUE(q.contains("dynamic")) << q.dump(2);
  std::set<std::pair<int, int>> configurations{{q.at("bits").get<int>(), q.at("group_size").get<int>()}};
  for (const auto& [pattern, overrides] : q.at("dynamic").items()) {
    EXPECT_EQ(pattern.rfind("+:^model\\.layers\\.", 0), 0u) << pattern;
    configurations.insert({overrides.at("bits").get<int>(), overrides.at("group_size").get<int>()});
  }
  EXPECT_GE(configurations.size(), 3u) << q.dump(2);
  const auto inspect = test::run_amlq("inspect " + dir);
  ASSERT_EQ(inspect.exit_code, 0) << inspect.output;
  const double expected = perplexity(h5), got = perplexity(dir);
  EXPECT_LE(std::abs(got - expected) / expected, 1e-6) << "h5 " << expected << ", gptq " << got;
}

}  // namespace
}  // namespace amlq
