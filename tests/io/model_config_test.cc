#include <gtest/gtest.h>

#include "core/error.h"
#include "io/model_config.h"
#include "tests/test_util.h"

namespace amlq {
namespace {

TEST(ModelConfig, ReadsStories260K) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  const auto c = load_model_config(test::shared_path("models/stories260K"));
  EXPECT_EQ(c.arch, Arch::Llama);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.num_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_TRUE(c.tie_word_embeddings);
  const auto p = count_parameters(c);
  EXPECT_EQ(p.total(), 260032);
  EXPECT_EQ(decoder_linears(c).size(), 7u);
}

TEST(ModelConfig, Qwen2HasQkvBiasAndLlama3Scaling) {
  const auto c = parse_model_config(R"({"model_type": "qwen2", "hidden_size": 128, "intermediate_size": 256,
      "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000,
      "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                       "original_max_position_embeddings": 8192}})",
                                    "cfg");
  EXPECT_EQ(c.arch, Arch::Qwen2);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::Llama3);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 8.0);
  const auto linears = decoder_linears(c);
  EXPECT_TRUE(linears[0].has_bias);
  EXPECT_FALSE(linears[3].has_bias);
  EXPECT_EQ(linears[1].rows, 64);  // k_proj: 2 kv heads x 32
}

TEST(ModelConfig, UnsupportedArchitectureListsSupported) {
  try {
    parse_model_config(R"({"model_type": "gpt_neox"})", "x/config.json");
    FAIL();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("x/config.json"), std::string::npos);
    EXPECT_NE(msg.find("gpt_neox"), std::string::npos);
    EXPECT_NE(msg.find("llama, mistral, qwen2"), std::string::npos) << msg;
  }
}

TEST(ModelConfig, MissingFieldAndBadJsonAreInputErrors) {
  EXPECT_THROW(parse_model_config(R"({"model_type": "llama"})", "c"), Error);
  EXPECT_THROW(parse_model_config("{oops", "c"), Error);
  EXPECT_THROW(parse_model_config(R"({"model_type": "llama", "hidden_size": 64, "intermediate_size": 1,
      "num_hidden_layers": 1, "num_attention_heads": 3, "num_key_value_heads": 2, "vocab_size": 5})",
                                  "c"),
               Error);
}

}  // namespace
}  // namespace amlq

namespace amlq {
namespace {

// Found by fuzzing (tests/fuzz, target config_json): values of the wrong JSON type
// or range used to be truncated, converted with undefined behaviour (1e300 to int)
// or to escape as nlohmann exceptions (an internal error instead of exit code 3).
TEST(ModelConfig, HostileValuesAreOneLineInputErrors) {
  const std::string base = R"("model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
      "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100)";
  const std::pair<std::string, std::string> cases[] = {
      {R"("hidden_size": 1e300)", "'hidden_size' has the wrong type"},
      {R"("hidden_size": 4294967360)", "'hidden_size' = 4294967360 is out of range"},
      {R"("intermediate_size": 16777217)", "intermediate_size = 16777217 exceeds"},
      {R"("head_dim": 16777216, "num_attention_heads": 64)", "num_attention_heads x head_dim"},
      {R"("eos_token_id": [])", "eos_token_id is an empty list"},
      {R"("eos_token_id": ["x"])", "'eos_token_id' has the wrong type"},
      {R"("rope_scaling": 5)", "rope_scaling is not an object"},
      {R"("rope_scaling": {"rope_type": 7})", "'rope_type' has the wrong type"},
      {R"("rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 4, "high_freq_factor": 4})",
       "low_freq_factor"},
      {R"("rope_theta": -1)", "rope_theta -1 must be positive"},
      {R"("tie_word_embeddings": 1)", "'tie_word_embeddings' has the wrong type"},
      {R"("rope_theta": 1e400)", "not valid JSON"},  // nlohmann's out_of_range, not a parse_error
  };
  for (const auto& [field, expected] : cases) {
    // A later duplicate key wins in nlohmann::json, so the case overrides the base.
    const std::string text = "{" + base + ", " + field + "}";
    try {
      parse_model_config(text, "cfg.json");
      ADD_FAILURE() << "accepted " << field;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Input) << field;
      EXPECT_NE(std::string(e.what()).find("cfg.json"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << field << ": " << e.what();
    }
  }
}

}  // namespace
}  // namespace amlq
