#include <gtest/gtest.h>

#include "io/tokenizer/split_patterns.h"
#include "io/tokenizer/unicode.h"

namespace amlq {
namespace {

using Pieces = std::vector<std::string_view>;

Pieces split(SplitPattern p, std::string_view text) {
  Pieces out;
  split_by_pattern(p, text, out);
  return out;
}

TEST(Unicode, Classes) {
  using namespace unicode;
  EXPECT_TRUE(is_letter(U'a') && is_letter(U'\u00E9') && is_letter(U'\u65E5') && is_letter(U'\u03A9'));
  EXPECT_FALSE(is_letter(U'1') || is_letter(U'_') || is_letter(U'\u00D7'));  // × is a symbol
  EXPECT_TRUE(is_number(U'7') && is_number(U'\u0663') && is_number(U'\u00BD') && is_number(U'\u2163'));
  EXPECT_FALSE(is_number(U'a'));
  EXPECT_TRUE(is_whitespace(U'\t') && is_whitespace(U'\u00A0') && is_whitespace(U'\u3000'));
  EXPECT_FALSE(is_whitespace(U'\u200B'));  // zero-width space is not White_Space
}

TEST(SplitPatterns, RecognizesOnlyKnownRegexes) {
  EXPECT_EQ(recognize_split_pattern(R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)"),
            SplitPattern::Gpt2);
  EXPECT_FALSE(recognize_split_pattern(R"(\w+|\s+)").has_value());
}

TEST(SplitPatterns, Gpt2) {
  EXPECT_EQ(split(SplitPattern::Gpt2, "Hello world's 123  ab\n\n"),
            (Pieces{"Hello", " world", "'s", " 123", " ", " ab", "\n\n"}));
  // Case-sensitive contractions: 'S is punctuation + letter.
  EXPECT_EQ(split(SplitPattern::Gpt2, "IT'S"), (Pieces{"IT", "'", "S"}));
  // Unicode letters/numbers; no-break space is whitespace but only ' ' attaches to the word.
  EXPECT_EQ(split(SplitPattern::Gpt2, " \xE6\x97\xA5\xE6\x9C\xAC\xC2\xBD\xC2\xA0x"),
            (Pieces{" \xE6\x97\xA5\xE6\x9C\xAC", "\xC2\xBD", "\xC2\xA0", "x"}));
  EXPECT_EQ(split(SplitPattern::Gpt2, "a?!  "), (Pieces{"a", "?!", "  "}));
}

TEST(SplitPatterns, Llama3AndQwen2) {
  EXPECT_EQ(split(SplitPattern::Llama3, "I'M 12345 ok!!\n\n x"),
            (Pieces{"I", "'M", " ", "123", "45", " ok", "!!\n\n", " x"}));
  EXPECT_EQ(split(SplitPattern::Qwen2, "I'M 12345"), (Pieces{"I", "'M", " ", "1", "2", "3", "4", "5"}));
  // \s*[\r\n]+ stops at the last line break; the spaces after it go with the next word.
  EXPECT_EQ(split(SplitPattern::Llama3, "a \n \n  b"), (Pieces{"a", " \n \n", " ", " b"}));
  // A punctuation mark right before letters joins them.
  EXPECT_EQ(split(SplitPattern::Llama3, "(word) x"), (Pieces{"(word", ")", " x"}));
}

}  // namespace
}  // namespace amlq
