// Hand-made tokenizer.json files of both flavours; every expected encoding is
// derived by hand in the comments from the merge ranks.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/tokenizer/tokenizer.h"
#include "tests/test_util.h"

namespace amlq {
namespace {

using json = nlohmann::json;
using Ids = std::vector<int32_t>;

std::string write_json(const test::TempDir& dir, const json& j, const std::string& name = "tokenizer.json") {
  const std::string path = dir.file(name);
  std::ofstream(path) << j.dump(1);
  return path;
}

// Expects loading `path` to fail with a one-line Input error containing the path and every needle.
void expect_load_error(const std::string& path, std::initializer_list<std::string> needles) {
  try {
    load_tokenizer(path);
    FAIL() << "loaded a bad tokenizer " << path;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input);
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "missing '" << n << "' in: " << msg;
  }
}

// GPT-2 alphabet: space is U+0120 'Ġ', newline U+010A 'Ċ'.
const std::string kG = "\xC4\xA0";   // Ġ
const std::string kNl = "\xC4\x8A";  // Ċ

// Byte-level vocab: every byte that the tests use as a single token, plus merges.
json byte_level_tokenizer() {
  json vocab = json::object();
  int next = 0;
  auto add = [&](const std::string& t) { vocab[t] = next++; };
  // ids 0..: single bytes a b c d e l o w r ! ' s 0 1 2 3, then Ġ, Ċ, é's two bytes (Ã, ©)
  for (const char* t : {"a", "b", "c", "d", "e", "l", "o", "w", "r", "!", "'", "s", "0", "1", "2", "3"}) add(t);
  add(kG);                // 16
  add(kNl);               // 17
  add("\xC3\x83");        // 18: 'Ã' stands for byte 0xC3
  add("\xC2\xA9");        // 19: '©' stands for byte 0xA9
  add("lo");              // 20  rank 0: l o
  add("low");             // 21  rank 1: lo w
  add(kG + "low");        // 22  rank 2: Ġ low
  add("er");              // 23  rank 3: e r
  add("lower");           // 24  rank 4: low er
  add("\xC3\x83\xC2\xA9");  // 25 rank 5: Ã © (the UTF-8 bytes of é)
  add(kG + kG);           // 26  rank 6: Ġ Ġ
  add("<|end|>");         // 27 (added token)
  add("'s");              // 28  rank 7: ' s
  json merges = json::array({"l o", "lo w", kG + " low", "e r", "low er", "\xC3\x83 \xC2\xA9", kG + " " + kG, "' s"});
  return {{"version", "1.0"},
          {"added_tokens", json::array({{{"id", 27}, {"content", "<|end|>"}, {"single_word", false},
                                         {"lstrip", false}, {"rstrip", false}, {"normalized", false},
                                         {"special", true}}})},
          {"normalizer", nullptr},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
          {"post_processor", {{"type", "ByteLevel"}}},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}};
}

TEST(HfByteLevel, MergesByRankWithinGpt2Pieces) {
  test::TempDir dir;
  const auto tok = load_tokenizer(write_json(dir, byte_level_tokenizer()));
  EXPECT_EQ(tok->vocab_size(), 29);
  // "lower": l o w e r -> (rank 0) lo w e r -> (1) low e r -> (3) low er -> (4) lower
  EXPECT_EQ(tok->encode("lower", false), Ids{24});
  // " lower" is one regex piece " ?\p{L}+": Ġ l o w e r -> lo, low, then Ġ+low (rank 2)
  // beats e+r (rank 3): Ġlow er; "Ġlow"+"er" is no merge.
  EXPECT_EQ(tok->encode(" lower", false), (Ids{22, 23}));
  // Pieces: "low" "!" " low" "'s"; the contraction is its own piece.
  EXPECT_EQ(tok->encode("low! low's", false), (Ids{21, 9, 22, 28}));
  // "  low": \s+(?!\S) takes the first space only, then " low".
  EXPECT_EQ(tok->encode("  low", false), (Ids{16, 22}));
  // Three spaces at the end stay one piece and merge ĠĠ first (leftmost), then Ġ.
  EXPECT_EQ(tok->encode("a   ", false), (Ids{0, 26, 16}));
  // é = C3 A9 -> Ã © -> merged (rank 5); a newline is Ċ.
  EXPECT_EQ(tok->encode("\xC3\xA9\n", false), (Ids{25, 17}));
  // Digits are one piece; no merges among them.
  EXPECT_EQ(tok->encode("a123", false), (Ids{0, 13, 14, 15}));
  // The added token is split out first; no post-processor template: add_special adds nothing.
  EXPECT_EQ(tok->encode("low<|end|>low", true), (Ids{21, 27, 21}));
  EXPECT_EQ(tok->decode(Ids{21, 27, 22, 25, 17}), "low low\xC3\xA9\n");
  EXPECT_EQ(tok->bos_id(), -1);
}

TEST(HfByteLevel, Llama3SplitPatternAndTemplate) {
  json j = byte_level_tokenizer();
  const std::string llama3 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers",
                         json::array({{{"type", "Split"}, {"pattern", {{"Regex", llama3}}}, {"behavior", "Isolated"},
                                       {"invert", false}},
                                      {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}})}};
  j["added_tokens"].push_back({{"id", 29}, {"content", "<|begin|>"}, {"special", true}, {"normalized", false}});
  j["post_processor"] = {
      {"type", "Sequence"},
      {"processors",
       json::array({{{"type", "ByteLevel"}},
                    {{"type", "TemplateProcessing"},
                     {"single", json::array({{{"SpecialToken", {{"id", "<|begin|>"}, {"type_id", 0}}}},
                                             {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
                     {"special_tokens", {{"<|begin|>", {{"id", "<|begin|>"}, {"ids", {29}}, {"tokens", {"<|begin|>"}}}}}}}})}};
  test::TempDir dir;
  const auto tok = load_tokenizer(write_json(dir, j));
  EXPECT_EQ(tok->bos_id(), 29);
  // Digits group by three: "1231" -> "123" "1".
  EXPECT_EQ(tok->encode("1231", true), (Ids{29, 13, 14, 15, 13}));
  // Case-insensitive contraction 'S is its own piece ("'" "S" - no 'S' token: byte 'S' missing
  // from the vocab and there is no unk token, so it is dropped, like the library does).
  EXPECT_EQ(tok->encode("low'S", false), (Ids{21, 10}));
  // "!low": [^\r\n\p{L}\p{N}]?\p{L}+ takes the '!' with the letters: ! l o w -> ! low.
  EXPECT_EQ(tok->encode("!low", false), (Ids{9, 21}));
  // "a \n\nb": \s*[\r\n]+ takes " \n\n" as one piece; no merges apply.
  EXPECT_EQ(tok->encode("a \n\nb", false), (Ids{0, 16, 17, 17, 1}));
}

TEST(HfByteLevel, UnsupportedComponentsAreNamed) {
  test::TempDir dir;
  json j = byte_level_tokenizer();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "\\w+"}}}, {"behavior", "Isolated"}};
  expect_load_error(write_json(dir, j, "a.json"), {"Split regex", "\\w+"});
  j = byte_level_tokenizer();
  j["model"]["type"] = "WordPiece";
  expect_load_error(write_json(dir, j, "b.json"), {"model type", "WordPiece"});
  j = byte_level_tokenizer();
  j["normalizer"] = {{"type", "NFKC"}};
  expect_load_error(write_json(dir, j, "c.json"), {"normalizer", "NFKC"});
  j = byte_level_tokenizer();
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  expect_load_error(write_json(dir, j, "d.json"), {"pre-tokenizer", "Whitespace"});
  j = byte_level_tokenizer();
  j["decoder"] = {{"type", "WordPiece"}};
  expect_load_error(write_json(dir, j, "e.json"), {"decoder", "WordPiece"});
  j = byte_level_tokenizer();
  j["model"]["merges"].push_back("x y");
  expect_load_error(write_json(dir, j, "f.json"), {"merge #8", "'x' + 'y'"});
  std::ofstream(dir.file("g.json")) << "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, ";
  expect_load_error(dir.file("g.json"), {"malformed tokenizer.json"});
  std::ofstream(dir.file("h.json")) << "[1, 2]";
  expect_load_error(dir.file("h.json"), {"not a Hugging Face tokenizer.json"});
  expect_load_error(dir.file("missing.json"), {"does not exist"});
}

// SentencePiece flavour, legacy Llama-2 layout: Prepend('▁') + Replace(' ', '▁'),
// no pre-tokenizer, byte fallback, "<s> $A".
const std::string kSp = "\xE2\x96\x81";  // ▁

json sentencepiece_tokenizer() {
  json vocab = json::object();
  int next = 0;
  auto add = [&](const std::string& t) { vocab[t] = next++; };
  add("<unk>");  // 0
  add("<s>");    // 1
  add("</s>");   // 2
  for (int b = 0; b < 256; ++b) add(fmt::format("<0x{:02X}>", b));  // 3..258
  add(kSp);          // 259
  add("h");          // 260
  add("i");          // 261
  add("a");          // 262
  add(kSp + "h");    // 263 rank 0: ▁ h
  add(kSp + "hi");   // 264 rank 1: ▁h i
  add("hi");         // 265 rank 2: h i
  add(kSp + kSp);    // 266 rank 3: ▁ ▁
  add("\xC3\xA9");   // 267: é is a single piece
  add("\xC3\xA9" "a");  // 268 rank 4: é a
  json merges = json::array({json::array({kSp, "h"}), json::array({kSp + "h", "i"}), json::array({"h", "i"}),
                             json::array({kSp, kSp}), json::array({"\xC3\xA9", "a"})});
  auto special = [](int id, const char* s) {
    return json{{"id", id}, {"content", s}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                {"normalized", false}, {"special", true}};
  };
  return {{"version", "1.0"},
          {"added_tokens", json::array({special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")})},
          {"normalizer", {{"type", "Sequence"},
                          {"normalizers", json::array({{{"type", "Prepend"}, {"prepend", kSp}},
                                                       {{"type", "Replace"}, {"pattern", {{"String", " "}}},
                                                        {"content", kSp}}})}}},
          {"pre_tokenizer", nullptr},
          {"post_processor",
           {{"type", "TemplateProcessing"},
            {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                    {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
            {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
          {"decoder", {{"type", "Sequence"},
                       {"decoders", json::array({{{"type", "Replace"}, {"pattern", {{"String", kSp}}}, {"content", " "}},
                                                 {{"type", "ByteFallback"}},
                                                 {{"type", "Fuse"}},
                                                 {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}}},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}, {"unk_token", "<unk>"},
                     {"byte_fallback", true}, {"fuse_unk", true}}}};
}

TEST(HfSentencePiece, PrependReplaceByteFallbackAndTemplate) {
  test::TempDir dir;
  const auto tok = load_tokenizer(write_json(dir, sentencepiece_tokenizer()));
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  // "hi hi" -> "▁hi▁hi": ▁ h i ▁ h i; rank 0 (▁h) twice, then rank 1 (▁h i) twice.
  EXPECT_EQ(tok->encode("hi hi", true), (Ids{1, 264, 264}));
  // "ahi" -> ▁ a h i: ▁+a is no merge, h+i rank 2.
  EXPECT_EQ(tok->encode("ahi", false), (Ids{259, 262, 265}));
  // "  h" -> ▁▁▁h: ▁+h (rank 0) at the end first, then the leftmost ▁▁ (rank 3).
  EXPECT_EQ(tok->encode("  h", false), (Ids{266, 263}));
  // "éa" -> ▁ é a: é+a rank 4. "z" is not in the vocab -> byte fallback <0x7A> = 3 + 0x7A.
  EXPECT_EQ(tok->encode("\xC3\xA9" "az", false), (Ids{259, 268, 3 + 0x7A}));
  // A 3-byte character with no piece falls back to its three bytes: € = E2 82 AC.
  EXPECT_EQ(tok->encode("\xE2\x82\xAC", false), (Ids{259, 3 + 0xE2, 3 + 0x82, 3 + 0xAC}));
  // Special tokens are split out first; each text segment gets its own ▁ prefix.
  EXPECT_EQ(tok->encode("hi</s>hi", false), (Ids{264, 2, 264}));
  EXPECT_EQ(tok->encode("", true), Ids{1});
  // Decode: ▁ -> space, bytes fused back, one leading space stripped, specials dropped.
  EXPECT_EQ(tok->decode(Ids{1, 264, 264, 3 + 0x7A}), "hi hiz");
  EXPECT_EQ(tok->decode(tok->encode("\xE2\x82\xAC hi", true)), "\xE2\x82\xAC hi");
}

TEST(HfSentencePiece, UnknownWithoutByteFallbackFusesToUnk) {
  json j = sentencepiece_tokenizer();
  j["model"]["byte_fallback"] = false;
  test::TempDir dir;
  const auto tok = load_tokenizer(write_json(dir, j));
  // "hizz" -> ▁hi z z: the two unknown z's fuse into one <unk>.
  EXPECT_EQ(tok->encode("hizz", false), (Ids{264, 0}));
  j["model"]["fuse_unk"] = false;
  const auto unfused = load_tokenizer(write_json(dir, j, "b.json"));
  EXPECT_EQ(unfused->encode("hizz", false), (Ids{264, 0, 0}));
}

TEST(HfSentencePiece, MetaspacePreTokenizer) {
  // Newer conversions: no normalizer, Metaspace(prepend_scheme first, split false), Metaspace decoder.
  json j = sentencepiece_tokenizer();
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", kSp}, {"prepend_scheme", "first"}, {"split", false}};
  j["decoder"] = {{"type", "Metaspace"}, {"replacement", kSp}, {"prepend_scheme", "first"}, {"split", false}};
  test::TempDir dir;
  const auto tok = load_tokenizer(write_json(dir, j));
  EXPECT_EQ(tok->encode("hi hi", true), (Ids{1, 264, 264}));
  // "first": the segment after a special token gets no prefix: h i -> hi.
  EXPECT_EQ(tok->encode("hi</s>hi", false), (Ids{264, 2, 265}));
  // A leading space already is the ▁, so none is prepended: "▁hi".
  EXPECT_EQ(tok->encode(" hi", false), Ids{264});
  EXPECT_EQ(tok->decode(Ids{1, 264, 264}), "hi hi");
  // split=true: words are cut before each ▁ and merged separately: "▁h" "▁▁h"?  "h  h" ->
  // "▁h▁▁h" -> pieces "▁h" "▁" "▁h".
  j["pre_tokenizer"]["split"] = true;
  const auto split = load_tokenizer(write_json(dir, j, "b.json"));
  EXPECT_EQ(split->encode("h  h", false), (Ids{263, 259, 263}));
}

TEST(HfSentencePiece, AddedTokenOptions) {
  json j = sentencepiece_tokenizer();
  j["added_tokens"].push_back({{"id", 269}, {"content", "<x>"}, {"special", false}, {"normalized", false},
                               {"lstrip", true}, {"rstrip", true}, {"single_word", false}});
  j["model"]["vocab"]["<x>"] = 269;
  test::TempDir dir;
  const auto tok = load_tokenizer(write_json(dir, j));
  // lstrip/rstrip swallow the spaces around <x>; each side is its own segment.
  EXPECT_EQ(tok->encode("hi  <x> hi", false), (Ids{264, 269, 264}));
  // A non-special added token is kept by decode.
  EXPECT_EQ(tok->decode(Ids{264, 269}), "hi<x>");
}

}  // namespace
}  // namespace amlq
