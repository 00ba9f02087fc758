// The full WikiText-2 test perplexity of stories260K (REFERENCE.md).
#include <gtest/gtest.h>

#include "backend/backend.h"
#include "io/tokenizer/dataset.h"
#include "model/perplexity.h"
#include "tests/test_util.h"

namespace amlq {
namespace {

TEST(StoriesPerplexity, FullWikiText2TestMatchesReference) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  const ModelWeights weights = load_model_weights(test::shared_path("models/stories260K"));
  const auto ids = load_token_ids(test::shared_path("data/wikitext2/test.tok512.u16"), nullptr, 512);
  auto backend = make_backend("cpu");
  const auto r = evaluate_perplexity(*backend, weights, ids, 512, 0, 8);
  EXPECT_EQ(r.windows, 1591);
  EXPECT_EQ(r.scored_tokens, 813001);
  EXPECT_NEAR(r.mean_nll, 4.806758, 2e-6);
  EXPECT_NEAR(r.ppl, 122.3344, 0.01);
  std::printf("full eval: %.2fs, %.0f tokens/s\n", r.seconds, r.tokens_per_second);
}

}  // namespace
}  // namespace amlq
