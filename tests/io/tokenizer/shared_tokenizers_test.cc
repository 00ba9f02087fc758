// Golden encodings on the shared tokenizers (docs/REFERENCE.md).
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "io/tokenizer/dataset.h"
#include "io/tokenizer/tokenizer.h"
#include "tests/test_util.h"

namespace amlq {
namespace {

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// Encodes and reports the speed, so the test log carries the number.
std::vector<int32_t> timed_encode(const Tokenizer& tok, const std::string& text, bool add_special) {
  const auto t0 = std::chrono::steady_clock::now();
  auto ids = tok.encode(text, add_special);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s: %zu bytes -> %zu ids in %.3f s (%.2f MB/s, %.0f tokens/s)\n", tok.description().c_str(),
              text.size(), ids.size(), s, text.size() / s / 1e6, ids.size() / s);
  return ids;
}

#define REQUIRE_SHARED(rel)                                                       \
  if (!std::filesystem::exists(test::shared_path(rel))) GTEST_SKIP() << "no " << (rel)

using Ids = std::vector<int32_t>;

TEST(Llama2cTokenizer, EncodesReferenceSentence) {
  REQUIRE_SHARED("models/stories260K/tok512.bin");
  const auto tok = load_tokenizer(test::shared_path("models/stories260K/tok512.bin"));
  EXPECT_EQ(tok->vocab_size(), 512);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_EQ(tok->description(), "llama2.c tok512.bin (512 tokens)");
  const std::string text = "Once upon a time, there was a little girl named Lily.";
  const Ids ids = tok->encode(text, true);
  EXPECT_EQ(ids, (Ids{1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426}));
  EXPECT_EQ(tok->decode(ids), text);
  EXPECT_EQ(tok->encode("", true), Ids{1});
  EXPECT_EQ(tok->encode("", false), Ids{});
}

TEST(Llama2cTokenizer, ModelDirectoryFindsTokBin) {
  REQUIRE_SHARED("models/stories260K/tok512.bin");
  const auto tok = load_tokenizer(test::shared_path("models/stories260K"));
  EXPECT_EQ(tok->vocab_size(), 512);
}

TEST(Llama2cTokenizer, WikiTextTestMatchesGoldenIds) {
  REQUIRE_SHARED("data/wikitext2/test.tok512.u16");
  const auto tok = load_tokenizer(test::shared_path("models/stories260K/tok512.bin"));
  const std::string text = read_text(test::shared_path("data/wikitext2/test.txt"));
  const Ids golden = load_token_ids(test::shared_path("data/wikitext2/test.tok512.u16"), nullptr, 512);
  ASSERT_EQ(golden.size(), 815070u);
  const Ids ids = timed_encode(*tok, text, true);
  ASSERT_EQ(ids.size(), golden.size());
  EXPECT_TRUE(ids == golden);
  EXPECT_TRUE(tok->decode(ids) == text);
}

TEST(Gpt2Tokenizer, ReferenceStrings) {
  REQUIRE_SHARED("tokenizers/gpt2/tokenizer.json");
  const auto tok = load_tokenizer(test::shared_path("tokenizers/gpt2/tokenizer.json"));
  EXPECT_EQ(tok->vocab_size(), 50257);
  EXPECT_EQ(tok->bos_id(), -1);
  EXPECT_EQ(tok->eos_id(), 50256);
  EXPECT_EQ(tok->encode("The capital of France is", true), (Ids{464, 3139, 286, 4881, 318}));
  EXPECT_EQ(tok->encode("Hello, world!", true), (Ids{15496, 11, 995, 0}));
  const std::string tricky = " <|endoftext|>x  \n\n h\xC3\xA9llo 123";
  const Ids ids = tok->encode(tricky, false);
  EXPECT_EQ(ids, (Ids{220, 50256, 87, 220, 220, 628, 289, 2634, 18798, 17031}));
  // Decoding drops the special token.
  EXPECT_EQ(tok->decode(ids), " x  \n\n h\xC3\xA9llo 123");
  EXPECT_EQ(tok->decode(tok->encode("Hello, world!", false)), "Hello, world!");
}

TEST(Gpt2Tokenizer, WikiTextTestCount) {
  REQUIRE_SHARED("tokenizers/gpt2/tokenizer.json");
  const auto tok = load_tokenizer(test::shared_path("tokenizers/gpt2/tokenizer.json"));
  const std::string text = read_text(test::shared_path("data/wikitext2/test.txt"));
  const Ids ids = timed_encode(*tok, text, true);
  EXPECT_EQ(ids.size(), 287644u);
  EXPECT_TRUE(tok->decode(ids) == text);
}

TEST(Llama2Tokenizer, ReferenceStrings) {
  REQUIRE_SHARED("tokenizers/llama2/tokenizer.json");
  const auto tok = load_tokenizer(test::shared_path("tokenizers/llama2"));
  EXPECT_EQ(tok->vocab_size(), 32000);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_EQ(tok->encode("Hello world", true), (Ids{1, 15043, 3186}));
  EXPECT_EQ(tok->encode(" leading space", true), (Ids{1, 29871, 8236, 2913}));
  EXPECT_EQ(tok->encode("trailing space ", true), (Ids{1, 25053, 2913, 29871}));
  EXPECT_EQ(tok->encode("multiple   spaces  between    words", true),
            (Ids{1, 2999, 259, 8162, 29871, 1546, 1678, 3838}));
  EXPECT_EQ(tok->encode("Hello world", false), (Ids{15043, 3186}));
  for (const char* s : {"Hello world", " leading space", "trailing space ", "multiple   spaces  between    words"})
    EXPECT_EQ(tok->decode(tok->encode(s, true)), s);
  // Literal special tokens are split out (HF behaviour, see PROVENANCE.md).
  const Ids with_unk = tok->encode("a<unk>b", false);
  ASSERT_EQ(with_unk.size(), 3u);
  EXPECT_EQ(with_unk[1], 0);
}

TEST(Llama2Tokenizer, WikiTextTestCount) {
  REQUIRE_SHARED("tokenizers/llama2/tokenizer.json");
  const auto tok = load_tokenizer(test::shared_path("tokenizers/llama2/tokenizer.json"));
  const std::string text = read_text(test::shared_path("data/wikitext2/test.txt"));
  const Ids ids = timed_encode(*tok, text, true);
  EXPECT_EQ(ids.size(), 341469u);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_TRUE(tok->decode(ids) == text);
}

}  // namespace
}  // namespace amlq
