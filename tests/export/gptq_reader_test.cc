// Reading a GPTQ checkpoint that amlq did not write: a 2-layer synthetic model
// quantized layer by layer, its tensors and quantize_config.json assembled here
// the way a peer tool lays them out (dynamic rules, an unquantized module,
// zero-minus-one or gptq_v2 zero points).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "core/error.h"
#include "export/gptq_linear.h"
#include "export/gptq_reader.h"
#include "export/requantize.h"
#include "io/safetensors.h"
#include "quant/pack.h"
#include "tests/model/synthetic_model.h"
#include "tests/quant/quant_test_util.h"
#include "tests/test_util.h"

namespace amlq {
namespace {

namespace fs = std::filesystem;

template <typename T>
std::span<const std::byte> bytes(const std::vector<T>& v) {
  return std::as_bytes(std::span<const T>(v.data(), v.size()));
}

struct PeerCheckpoint {
  ModelWeights original;
  std::map<std::string, MatrixF> expected;  // W_hat (or W) of every linear
};

// Layer 1's o_proj stays dense ("-:" rule), every down_proj is 8-bit (a "+:"
// rule), the rest 4-bit groups of 16 with act-order.
PeerCheckpoint write_peer_checkpoint(const std::string& dir, const std::string& format) {
  PeerCheckpoint peer;
  const ModelConfig config = test::synthetic_config(2);
  peer.original = test::synthetic_weights(config, 17);
  auto backend = make_backend("cpu");
  SafetensorsWriter writer;
  auto add_f32 = [&](const std::string& name, std::vector<int64_t> shape, const float* data, size_t n) {
    writer.add_f32(name, std::move(shape), std::span<const float>(data, n));
  };
  const ModelWeights& w = peer.original;
  add_f32("model.embed_tokens.weight", {w.embedding.rows(), w.embedding.cols()}, w.embedding.data(), w.embedding.size());
  add_f32("model.norm.weight", {w.final_norm.size()}, w.final_norm.data(), w.final_norm.size());
  add_f32("lm_head.weight", {w.lm_head.rows(), w.lm_head.cols()}, w.lm_head.data(), w.lm_head.size());
  const auto specs = decoder_linears(config);
  for (int l = 0; l < 2; ++l) {
    const auto& layer = w.layers[static_cast<size_t>(l)];
    add_f32(layer_tensor_name(l, "input_layernorm.weight"), {config.hidden_size}, layer.input_norm.data(),
            layer.input_norm.size());
    add_f32(layer_tensor_name(l, "post_attention_layernorm.weight"), {config.hidden_size},
            layer.post_attention_norm.data(), layer.post_attention_norm.size());
    for (size_t j = 0; j < specs.size(); ++j) {
      const std::string name = layer_tensor_name(l, specs[j].name);
      const MatrixF& dense = layer.linears[j].dense;
      const VectorF& bias = layer.linears[j].bias;
      if (bias.size()) add_f32(name + ".bias", {bias.size()}, bias.data(), bias.size());
      if (l == 1 && specs[j].name == "self_attn.o_proj") {
        add_f32(name + ".weight", {dense.rows(), dense.cols()}, dense.data(), dense.size());
        peer.expected[name] = dense;
        continue;
      }
      const QuantSpec spec = QuantSpec::parse(specs[j].name == "mlp.down_proj" ? "8b-g16" : "4b-g16");
      const QuantizedMatrix q =
          backend->quantize(dense, test::realistic_hessian(specs[j].cols, 3 + l * 10 + static_cast<uint32_t>(j)),
                            spec, GptqOptions{});
      const PackedLinear packed = pack_linear(name, q, nullptr, LowRankMethod::None);
      const int offset = format == "gptq_v2" ? gptq::kZeroOffsetV2 : gptq::kZeroOffsetV1;
      const GptqConversion c = to_gptq(packed, offset);
      EXPECT_EQ(c.problem, GptqProblem::None) << c.reason;
      const GptqLinear& g = c.linear;
      writer.add(name + ".qweight", DType::I32, {static_cast<int64_t>(g.qweight.size() / g.out), g.out}, bytes(g.qweight));
      writer.add(name + ".qzeros", DType::I32, {g.groups(), static_cast<int64_t>(g.qzeros.size() / g.groups())},
                 bytes(g.qzeros));
      writer.add(name + ".scales", DType::F16, {g.groups(), g.out}, bytes(g.scales));
      writer.add(name + ".g_idx", DType::I32, {g.in}, bytes(g.g_idx));
      peer.expected[name] = dequantize(packed, false);
    }
  }
  writer.write(dir + "/model.safetensors");
  auto cfg = nlohmann::json::parse(config.source_json);
  std::ofstream(dir + "/config.json") << cfg.dump(2);
  const nlohmann::json quant = {
      {"bits", 4},
      {"group_size", 16},
      {"desc_act", true},
      {"sym", false},
      {"checkpoint_format", format},
      {"dynamic",
       {{"-:.*layers\\.1\\.self_attn\\.o_proj", nlohmann::json::object()},
        {"+:.*mlp\\.down_proj", {{"bits", 8}}}}}};
  std::ofstream(dir + "/quantize_config.json") << quant.dump(2);
  return peer;
}

void expect_same_weights(const PeerCheckpoint& peer, const ModelWeights& loaded) {
  const auto specs = decoder_linears(loaded.config);
  ASSERT_EQ(loaded.layers.size(), 2u);
  for (int l = 0; l < 2; ++l)
    for (size_t j = 0; j < specs.size(); ++j) {
      const std::string name = layer_tensor_name(l, specs[j].name);
      const LinearWeights& lw = loaded.layers[static_cast<size_t>(l)].linears[j];
      const MatrixF got = lw.packed ? dequantize(*lw.packed, false) : lw.dense;
      EXPECT_EQ((got - peer.expected.at(name)).cwiseAbs().maxCoeff(), 0.0f) << name;
      const VectorF& bias = peer.original.layers[static_cast<size_t>(l)].linears[j].bias;
      if (bias.size() && lw.packed) {
        ASSERT_EQ(lw.packed->bias.size(), static_cast<size_t>(bias.size())) << name;
        EXPECT_EQ(lw.packed->bias[0], bias[0]) << name;
      }
    }
  EXPECT_FALSE(loaded.layers[1].linears[3].packed) << "the '-:' rule's module must stay dense";
  ASSERT_TRUE(loaded.layers[0].linears[6].packed);
  EXPECT_EQ(loaded.layers[0].linears[6].packed->parts[0].bits, 8);  // down_proj by the '+:' rule
  EXPECT_EQ(loaded.layers[0].linears[0].packed->parts[0].bits, 4);
  EXPECT_EQ((loaded.embedding - peer.original.embedding).cwiseAbs().maxCoeff(), 0.0f);
}

TEST(GptqReader, PeerCheckpointWithDynamicRulesReadsBackExactly) {
  test::TempDir tmp;
  const PeerCheckpoint peer = write_peer_checkpoint(tmp.path().string(), "gptq");
  EXPECT_EQ(checkpoint_kind(tmp.path().string()), CheckpointKind::Gptq);
  const GptqCheckpointConfig qc = read_gptq_config(tmp.path().string());
  EXPECT_FALSE(qc.module("model.layers.1.self_attn.o_proj").quantized);
  EXPECT_TRUE(qc.module("model.layers.0.self_attn.o_proj").quantized);
  EXPECT_EQ(qc.module("model.layers.0.mlp.down_proj").bits, 8);
  EXPECT_EQ(qc.module("model.layers.0.mlp.down_proj").group_size, 16);
  expect_same_weights(peer, load_gptq_model_weights(tmp.path().string()));
  const std::string summary = summarize_gptq_checkpoint(tmp.path().string());
  EXPECT_NE(summary.find("2 dynamic rule(s)"), std::string::npos) << summary;
  EXPECT_NE(summary.find("dense"), std::string::npos) << summary;
}

TEST(GptqReader, GptqV2ZeroPointsAreReadWithoutTheOffset) {
  test::TempDir tmp;
  const PeerCheckpoint peer = write_peer_checkpoint(tmp.path().string(), "gptq_v2");
  expect_same_weights(peer, load_gptq_model_weights(tmp.path().string()));
}

TEST(GptqReader, WrongBitsForATensorNamesTheTensor) {
  test::TempDir tmp;
  write_peer_checkpoint(tmp.path().string(), "gptq");
  // Claim 3 bits for everything: qweight shapes no longer match.
  auto q = nlohmann::json::parse(std::ifstream(tmp.file("quantize_config.json")));
  q["bits"] = 3;
  std::ofstream(tmp.file("quantize_config.json")) << q.dump();
  try {
    load_gptq_model_weights(tmp.path().string());
    FAIL() << "accepted qweight tensors of the wrong size";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input);
    EXPECT_NE(std::string(e.what()).find("model.layers.0.self_attn.q_proj.qweight"), std::string::npos) << e.what();
  }
}

TEST(GptqReader, OtherQuantizationMethodsAreRefused) {
  test::TempDir tmp;
  std::ofstream(tmp.file("config.json")) << R"({"model_type": "llama", "quantization_config": {"quant_method": "awq"}})";
  try {
    checkpoint_kind(tmp.path().string());
    FAIL() << "accepted an AWQ checkpoint";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'awq' is not supported"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace amlq

namespace amlq {
namespace {

TEST(CalibrationRecord, FilesWithoutTheRecordAreRefusedNamingTheFile) {
  try {
    read_calibration_record(R"({"input_hash": "abc", "recipes": "default"})", "old.h5");
    FAIL() << "accepted a file without extra.calibration";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input);
    EXPECT_NE(std::string(e.what()).find("old.h5: the file does not record its calibration options"),
              std::string::npos)
        << e.what();
  }
  const CalibrationRecord r = read_calibration_record(
      R"({"calibration": {"data": "d.u16", "data_hash": "h", "num_samples": 4, "seqlen": 32, "seed": 7,
          "random_offsets": false, "batch": 2, "samples_per_block": 3}, "gptq": {"damp": 0.05, "block_size": 64}})",
      "new.h5");
  EXPECT_EQ(r.data, "d.u16");
  EXPECT_EQ(r.num_samples, 4);
  EXPECT_EQ(r.seed, 7u);
  EXPECT_FALSE(r.random_offsets);
  EXPECT_EQ(r.samples_per_block, 3);
  EXPECT_EQ(r.damp, 0.05);
  EXPECT_EQ(r.block_size, 64);
}

}  // namespace
}  // namespace amlq
