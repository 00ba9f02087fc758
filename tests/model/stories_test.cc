// The forward pass on the real stories260K model against REFERENCE.md.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "core/error.h"
#include "io/tokenizer/dataset.h"
#include "model/forward.h"
#include "model/generate.h"
#include "model/perplexity.h"
#include "tests/test_util.h"

namespace amlq {
namespace {

// Mean NLL of the first 50 windows of test.tok512.u16 at seqlen 512 (this implementation).
constexpr double kFirst50MeanNll = 4.883636;

class Stories : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
    if (!weights_) weights_ = std::make_unique<ModelWeights>(load_model_weights(model_dir()));
    backend_ = make_backend("cpu");
  }
  static std::string model_dir() { return test::shared_path("models/stories260K"); }
  static const std::vector<int32_t>& test_ids() {
    static const std::vector<int32_t> ids =
        load_token_ids(test::shared_path("data/wikitext2/test.tok512.u16"), nullptr, 512);
    return ids;
  }
  static std::unique_ptr<ModelWeights> weights_;
  std::unique_ptr<Backend> backend_;
};
std::unique_ptr<ModelWeights> Stories::weights_;

TEST_F(Stories, LogitsAtPositionZeroMatchReference) {
  const std::vector<int32_t> ids{1};
  MatrixF logits;
  model_logits(*backend_, *weights_, ids, 1, 1, logits);
  ASSERT_EQ(logits.cols(), 512);
  EXPECT_NEAR(logits(0, 0), -6.222914, 1e-4);
  EXPECT_NEAR(logits(0, 1), 8.404342, 1e-4);
  EXPECT_NEAR(logits(0, 2), -6.223739, 1e-4);
  EXPECT_NEAR(logits(0, 3), -6.222544, 1e-4);
}

TEST_F(Stories, GreedyGenerationMatchesReference) {
  const auto ids = greedy_generate(*backend_, *weights_, {1}, 19, false);
  const std::vector<int32_t> expected{1,   403, 407, 261, 378, 432, 383, 286, 261, 376,
                                      298, 315, 421, 395, 317, 426, 338, 401, 396, 267};
  EXPECT_EQ(ids, expected);
}

TEST_F(Stories, PerplexityOfFirst50WindowsDoesNotDependOnBatch) {
  const auto a = evaluate_perplexity(*backend_, *weights_, test_ids(), 512, 50, 8);
  EXPECT_EQ(a.windows, 50);
  EXPECT_EQ(a.scored_tokens, 50 * 511);
  EXPECT_NEAR(a.mean_nll, kFirst50MeanNll, 1e-5);
  const auto b = evaluate_perplexity(*backend_, *weights_, test_ids(), 512, 50, 3);
  EXPECT_NEAR(a.mean_nll, b.mean_nll, 1e-9);
}

TEST_F(Stories, ShortDatasetIsAnInputError) {
  const std::vector<int32_t> ids(100, 5);
  EXPECT_THROW(evaluate_perplexity(*backend_, *weights_, ids, 512, 0, 8), Error);
}

TEST(EvalCommand, JsonResultForIdFile) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  const auto r = test::run_amlq("eval " + test::shared_path("models/stories260K") + " --data " +
                                test::shared_path("data/wikitext2/test.tok512.u16") +
                                " --seqlen 512 --max-windows 50 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // run_amlq merges stderr (log lines) into the output; the JSON object is the rest.
  const size_t begin = r.output.find("{\n");
  ASSERT_NE(begin, std::string::npos) << r.output;
  const auto j = nlohmann::json::parse(r.output.substr(begin, r.output.rfind('}') - begin + 1));
  EXPECT_EQ(j["windows"].get<int>(), 50);
  EXPECT_EQ(j["scored_tokens"].get<int>(), 50 * 511);
  EXPECT_NEAR(j["mean_nll"].get<double>(), kFirst50MeanNll, 1e-5);
}

TEST(EvalCommand, TextDataIsTokenizedWithTheModelsTokenizer) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  const auto r = test::run_amlq("eval " + test::shared_path("models/stories260K") + " --data " +
                                test::shared_path("data/wikitext2/test.txt") + " --max-windows 50");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("scored tokens  25550"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(fmt::format("mean NLL       {:.6f}", kFirst50MeanNll)), std::string::npos) << r.output;
}

TEST(EvalCommand, BadInputsGiveTheirExitCodes) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  const std::string model = test::shared_path("models/stories260K");
  EXPECT_EQ(test::run_amlq("eval " + model + " --data /nonexistent.u16").exit_code, 3);
  EXPECT_EQ(test::run_amlq("eval " + model + " --data x.u16 --seqlen 1").exit_code, 2);
  const auto h5 = test::run_amlq("eval /nonexistent/model.h5 --data x.u16");
  EXPECT_EQ(h5.exit_code, 3) << h5.output;
  EXPECT_NE(h5.output.find("/nonexistent/model.h5"), std::string::npos) << h5.output;
}

TEST(GenerateCommand, GreedyFromPromptPrintsIdsAndText) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  const auto r = test::run_amlq("generate " + test::shared_path("models/stories260K") +
                                " --prompt 'Once upon a time' --tokens 12");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("ids   1 403 407 261 378"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("text  Once upon a time, there was a little girl named Lily"), std::string::npos)
      << r.output;
}

}  // namespace
}  // namespace amlq
