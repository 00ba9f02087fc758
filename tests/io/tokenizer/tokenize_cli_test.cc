// amlq tokenize, end to end through the built binary.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "io/tokenizer/dataset.h"
#include "io/tokenizer/tokenizer.h"
#include "tests/test_util.h"

namespace amlq {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

TEST(TokenizeCli, WikiTextReproducesGoldenU16) {
  const std::string tok = test::shared_path("models/stories260K/tok512.bin");
  if (!std::filesystem::exists(tok)) GTEST_SKIP() << "no shared models";
  test::TempDir dir;
  const auto r = test::run_amlq("tokenize --tokenizer " + test::shared_path("models/stories260K") + " --data " +
                                test::shared_path("data/wikitext2/test.txt") + " --out " + dir.file("test.u16"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("815070 tokens"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("tokens/s"), std::string::npos) << r.output;
  EXPECT_TRUE(slurp(dir.file("test.u16")) == slurp(test::shared_path("data/wikitext2/test.tok512.u16")));
}

TEST(TokenizeCli, WritesU32AndHonoursNoSpecial) {
  const std::string tok = test::shared_path("tokenizers/llama2/tokenizer.json");
  if (!std::filesystem::exists(tok)) GTEST_SKIP() << "no shared tokenizers";
  test::TempDir dir;
  std::ofstream(dir.file("in.txt"), std::ios::binary) << "Hello world";
  auto r = test::run_amlq("tokenize --tokenizer " + tok + " --data " + dir.file("in.txt") + " --out " + dir.file("a.u32"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(load_token_ids(dir.file("a.u32"), nullptr, 32000), (std::vector<int32_t>{1, 15043, 3186}));
  r = test::run_amlq("tokenize --no-special --tokenizer " + tok + " --data " + dir.file("in.txt") + " --out " +
                     dir.file("b.u32"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(load_token_ids(dir.file("b.u32"), nullptr, 32000), (std::vector<int32_t>{15043, 3186}));
}

TEST(TokenizeCli, ErrorsLeaveNoOutput) {
  test::TempDir dir;
  std::ofstream(dir.file("in.txt")) << "text";
  std::ofstream(dir.file("tokenizer.json")) << "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}";
  auto r = test::run_amlq("tokenize --tokenizer " + dir.file("tokenizer.json") + " --data " + dir.file("in.txt") +
                          " --out " + dir.file("o.u32"));
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("unsupported model type 'Unigram'"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir.file("o.u32")));
  r = test::run_amlq("tokenize --tokenizer " + dir.file("tokenizer.json") + " --data " + dir.file("in.txt") +
                     " --out " + dir.file("o.bin"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(".u32"), std::string::npos) << r.output;
  r = test::run_amlq("tokenize --tokenizer " + dir.file("nope") + " --data " + dir.file("in.txt") + " --out " +
                     dir.file("o.u32"));
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("does not exist"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir.file("o.u32")));
}

}  // namespace
}  // namespace amlq
