// A hand-made llama2.c tokenizer file; expected encodings derived from the scores.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "core/error.h"
#include "io/tokenizer/tokenizer.h"
#include "tests/test_util.h"

namespace amlq {
namespace {

using Ids = std::vector<int32_t>;

struct Entry {
  float score;
  std::string piece;
};

void write_bin(const std::string& path, const std::vector<Entry>& entries, int32_t max_len = 16) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(&max_len), 4);
  for (const auto& e : entries) {
    const int32_t len = static_cast<int32_t>(e.piece.size());
    f.write(reinterpret_cast<const char*>(&e.score), 4);
    f.write(reinterpret_cast<const char*>(&len), 4);
    f << e.piece;
  }
}

std::vector<Entry> small_vocab() {
  std::vector<Entry> v{{0, "<unk>"}, {0, "\n<s>\n"}, {0, "\n</s>\n"}};
  for (int b = 0; b < 256; ++b) v.push_back({0, fmt::format("<0x{:02X}>", b)});
  v.push_back({-1e9f, " "});  // 259
  v.push_back({-1, "a"});     // 260
  v.push_back({-2, "b"});     // 261
  v.push_back({1.0f, "ab"});  // 262
  v.push_back({2.0f, " a"});  // 263
  v.push_back({3.0f, "ba"});  // 264
  v.push_back({0.5f, " ab"}); // 265
  return v;
}

TEST(Llama2cFormat, HighestScoreMergesFirst) {
  test::TempDir dir;
  write_bin(dir.file("tok.bin"), small_vocab());
  const auto tok = load_tokenizer(dir.file("tok.bin"));
  EXPECT_EQ(tok->vocab_size(), 266);
  EXPECT_EQ(tok->description(), "llama2.c tok.bin (266 tokens)");
  // "ab" -> ␣ a b: " a" (2.0) beats "ab" (1.0); then " a"+"b" = " ab" (0.5).
  EXPECT_EQ(tok->encode("ab", false), Ids{265});
  // "bab" -> ␣ b a b: "ba" (3.0) beats "ab" (1.0); nothing merges after.
  EXPECT_EQ(tok->encode("bab", true), (Ids{1, 259, 264, 261}));
  // "é" has no piece: its bytes C3 A9 become ids 3 + byte.
  EXPECT_EQ(tok->encode("\xC3\xA9", false), (Ids{259, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(tok->decode(Ids{1, 259, 3 + 0xC3, 3 + 0xA9}), "\xC3\xA9");
  EXPECT_EQ(tok->decode(Ids{1, 263, 260, 2}), "aa");
  EXPECT_EQ(tok->decode(tok->encode(" b\nab ", true)), " b\nab ");
  try {
    tok->decode(Ids{266});
    FAIL() << "decoded an id outside the vocabulary";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("266"), std::string::npos);
  }
}

void expect_load_error(const std::string& path, const std::string& needle) {
  try {
    load_tokenizer(path);
    FAIL() << "loaded a bad tokenizer";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input);
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  }
}

TEST(Llama2cFormat, BadFilesAreOneLineInputErrors) {
  test::TempDir dir;
  auto v = small_vocab();
  write_bin(dir.file("short.bin"), v);
  {  // chop the last piece's bytes
    const auto size = std::filesystem::file_size(dir.file("short.bin"));
    std::filesystem::resize_file(dir.file("short.bin"), size - 2);
  }
  expect_load_error(dir.file("short.bin"), "token 265 needs 3 bytes");
  v[260].score = std::nanf("");
  write_bin(dir.file("nan.bin"), v);
  expect_load_error(dir.file("nan.bin"), "token 260 has a non-finite score");
  write_bin(dir.file("long.bin"), small_vocab(), 2);
  expect_load_error(dir.file("long.bin"), "length 5 (max_token_length 2)");
  std::ofstream(dir.file("tiny.bin")) << "ab";
  expect_load_error(dir.file("tiny.bin"), "not a llama2.c tokenizer");
  std::filesystem::create_directory(dir.file("empty_model"));
  expect_load_error(dir.file("empty_model"), "no tokenizer.json or llama2.c tok*.bin");
}

}  // namespace
}  // namespace amlq
