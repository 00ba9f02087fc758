#include "search/flat_toml.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace amlq::toml {
namespace {

std::string error_of(const std::string& text) {
  try {
    parse_flat(text, "r.toml");
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input);
    return e.what();
  }
  return "<no error>";
}

TEST(FlatToml, ParsesScalarsArraysAndComments) {
  const auto entries = parse_flat(
      "# header\n"
      "name = \"fast\"  # trailing comment\n"
      "\n"
      "n = -12\n"
      "x = 2.5e-1\n"
      "flag = true\n"
      "lit = 'a\\b'\n"
      "list = [\n"
      "  1, 2,  # comment inside\n"
      "  3,\n"
      "]\n"
      "labels = [\"25%4b-g64+75%3b-g128\", \"a\\\"b\"]\r\n"
      "empty = []\n",
      "r.toml");
  ASSERT_EQ(entries.size(), 8u);
  EXPECT_EQ(entries[0].key, "name");
  EXPECT_EQ(std::get<std::string>(entries[0].value.data), "fast");
  EXPECT_EQ(std::get<int64_t>(entries[1].value.data), -12);
  EXPECT_DOUBLE_EQ(std::get<double>(entries[2].value.data), 0.25);
  EXPECT_TRUE(std::get<bool>(entries[3].value.data));
  EXPECT_EQ(std::get<std::string>(entries[4].value.data), "a\\b");
  const auto& list = std::get<Array>(entries[5].value.data);
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(std::get<int64_t>(list[2].data), 3);
  EXPECT_EQ(entries[5].line, 8);
  const auto& labels = std::get<Array>(entries[6].value.data);
  EXPECT_EQ(std::get<std::string>(labels[0].data), "25%4b-g64+75%3b-g128");
  EXPECT_EQ(std::get<std::string>(labels[1].data), "a\"b");
  EXPECT_TRUE(std::get<Array>(entries[7].value.data).empty());
}

TEST(FlatToml, MalformedInputNamesFileAndLine) {
  EXPECT_EQ(error_of("a = 1\nb = [1, 2\n"), "r.toml:3: unterminated array for 'b'");
  EXPECT_EQ(error_of("a = 1\na = 2\n"), "r.toml:2: duplicate key 'a' (first set on line 1)");
  EXPECT_EQ(error_of("[table]\n"), "r.toml:1: tables ('[...]') are not supported in this file");
  EXPECT_EQ(error_of("a = 12x\n"), "r.toml:1: malformed value '12x' for 'a'");
  EXPECT_EQ(error_of("a = \"open\n"), "r.toml:1: unterminated string for 'a'");
  EXPECT_EQ(error_of("a = 1 2\n"), "r.toml:1: unexpected text after the value of 'a'");
  EXPECT_EQ(error_of("a =\n"), "r.toml:1: key 'a' has no value");
  EXPECT_EQ(error_of("a.b = 1\n"), "r.toml:1: dotted keys ('a.') are not supported");
  EXPECT_EQ(error_of("= 1\n"), "r.toml:1: expected a key, found '='");
  EXPECT_EQ(error_of("a = [1 2]\n"), "r.toml:1: expected ',' or ']' in the array of 'a'");
  EXPECT_EQ(error_of("a = nan\n"), "r.toml:1: malformed value 'nan' for 'a'");
  // Nesting is bounded: a file of '[' used to recurse until the stack overflowed.
  EXPECT_EQ(error_of("a = " + std::string(100000, '[') + "\n"),
            "r.toml:1: arrays nested deeper than 16 in the value of 'a'");
  EXPECT_NO_THROW(parse_flat("a = " + std::string(16, '[') + std::string(16, ']') + "\n", "r.toml"));
}

}  // namespace
}  // namespace amlq::toml
