// Hugging Face tokenizer.json with model.type BPE. The pipeline mirrors the
// tokenizers library: split out added tokens (non-normalized ones on the raw text,
// normalized ones after normalizing), normalize, pre-tokenize into words, BPE each
// word by merge rank, then the post-processor's template adds special tokens.
// Two flavours share it: byte-level (ByteLevel pre-tokenizer: BPE symbols are
// bytes, vocab strings spell them with GPT-2's byte->code point map) and
// SentencePiece-style (symbols are code points, '▁' for spaces, <0xXX> fallback).
// Anything not implemented is rejected at load time, naming the component.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "core/error.h"
#include "core/log.h"
#include "io/json_value.h"
#include "io/tokenizer/bpe_merge.h"
#include "io/tokenizer/formats.h"
#include "io/tokenizer/split_patterns.h"
#include "io/tokenizer/unicode.h"

namespace amlq {
namespace {

using json = nlohmann::json;

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other
// 68 bytes to U+0100.. in byte order, so every byte has a visible stand-in.
struct ByteLevelAlphabet {
  char32_t byte_to_cp[256];
  std::unordered_map<char32_t, uint8_t> cp_to_byte;
  ByteLevelAlphabet() {
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      byte_to_cp[b] = printable ? static_cast<char32_t>(b) : next++;
      cp_to_byte[byte_to_cp[b]] = static_cast<uint8_t>(b);
    }
  }
};

const ByteLevelAlphabet& byte_level_alphabet() {
  static const ByteLevelAlphabet alphabet;
  return alphabet;
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  std::string out;
  size_t start = 0, hit;
  while ((hit = s.find(from, start)) != std::string::npos) {
    out.append(s, start, hit - start);
    out += to;
    start = hit + from.size();
  }
  if (start == 0) return;
  out.append(s, start, std::string::npos);
  s = std::move(out);
}

// "<0x41>" -> 0x41, else -1.
int parse_byte_token(std::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
  auto hex = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; };
  const int hi = hex(t[3]), lo = hex(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

bool is_word_char(char32_t c) { return c == '_' || unicode::is_letter(c) || unicode::is_number(c); }

char32_t code_point_before(std::string_view s, size_t i) {
  size_t k = i;
  while (k > 0 && (static_cast<unsigned char>(s[k - 1]) & 0xC0) == 0x80 && i - k < 3) --k;
  if (k > 0) --k;
  std::vector<char32_t> cps;
  std::vector<uint32_t> offsets;
  unicode::decode_utf8(s.substr(k, i - k), cps, offsets);
  return cps.empty() ? 0 : cps.back();
}

char32_t code_point_at(std::string_view s, size_t i) {
  std::vector<char32_t> cps;
  std::vector<uint32_t> offsets;
  unicode::decode_utf8(s.substr(i, unicode::utf8_length_at(s, i)), cps, offsets);
  return cps.empty() ? 0 : cps.front();
}

bool is_ascii_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false, normalized = false, lstrip = false, rstrip = false, single_word = false;
};

// A piece of input: text, or an added token already resolved to its id.
struct Segment {
  std::string_view text;
  int32_t id = -1;
  bool at_start = false;  // begins at offset 0 of the caller's text (Metaspace "first")
};

// Leftmost-longest matching of added tokens, as the tokenizers library does.
class AddedTokenSplitter {
 public:
  void add(const AddedToken& t) {
    if (t.content.empty()) return;
    auto& bucket = by_first_byte_[static_cast<unsigned char>(t.content[0])];
    bucket.push_back(t);
    std::stable_sort(bucket.begin(), bucket.end(),
                     [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
    empty_ = false;
  }
  bool empty() const { return empty_; }

  void split(std::string_view text, bool at_start, std::vector<Segment>& out) const {
    size_t start = 0, i = 0;
    while (i < text.size()) {
      const AddedToken* hit = nullptr;
      for (const auto& t : by_first_byte_[static_cast<unsigned char>(text[i])]) {
        if (text.compare(i, t.content.size(), t.content) != 0) continue;
        const size_t end = i + t.content.size();
        if (t.single_word && ((i > 0 && is_word_char(code_point_before(text, i))) ||
                              (end < text.size() && is_word_char(code_point_at(text, end)))))
          continue;
        hit = &t;
        break;
      }
      if (!hit) {
        ++i;
        continue;
      }
      size_t b = i, e = i + hit->content.size();
      if (hit->lstrip)
        while (b > start && is_ascii_space(text[b - 1])) --b;
      if (hit->rstrip)
        while (e < text.size() && is_ascii_space(text[e])) ++e;
      if (b > start) out.push_back({text.substr(start, b - start), -1, at_start && start == 0});
      out.push_back({{}, hit->id, false});
      start = i = e;
    }
    if (start < text.size()) out.push_back({text.substr(start), -1, at_start && start == 0});
  }

 private:
  std::vector<AddedToken> by_first_byte_[256];
  bool empty_ = true;
};

struct NormalizerStep {
  enum class Kind { Prepend, Replace, Nfc } kind;
  std::string a, b;
};

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext };

struct PreTokenizerStep {
  enum class Kind { ByteLevel, SplitRegex, SplitString, Metaspace } kind;
  bool add_prefix_space = false;  // ByteLevel
  bool use_regex = true;          // ByteLevel
  SplitPattern pattern = SplitPattern::Gpt2;
  std::string literal;            // SplitString delimiter, Metaspace replacement
  SplitBehavior behavior = SplitBehavior::Isolated;
  enum class Prepend { Always, First, Never } prepend = Prepend::Always;  // Metaspace
  bool split = true;                                                      // Metaspace
};

struct DecoderStep {
  enum class Kind { ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace } kind;
  std::string a, b;  // Replace pattern/content, Strip content, Metaspace replacement
  int start = 0, stop = 0;
  bool strip_first_space = true;  // Metaspace with a prepend scheme other than "never"
};

struct Piece {
  std::string text;
  bool at_start;
};

class HfBpeTokenizer final : public Tokenizer {
 public:
  explicit HfBpeTokenizer(std::string path) : path_(std::move(path)) {}

  void load(const json& j) {
    parse_model(j.at("model"));
    parse_added_tokens(j.value("added_tokens", json::array()));
    parse_normalizer(j.value("normalizer", json()));
    parse_pre_tokenizer(j.value("pre_tokenizer", json()));
    parse_post_processor(j.value("post_processor", json()));
    parse_decoder(j.value("decoder", json()));
    finish();
  }

  std::vector<int32_t> encode(std::string_view text, bool add_special) const override {
    std::vector<int32_t> ids;
    if (add_special) ids = prefix_;
    std::unordered_map<std::string, std::vector<int32_t>> cache;
    std::vector<Segment> raw, norm;
    if (raw_added_.empty()) raw.push_back({text, -1, true});
    else raw_added_.split(text, true, raw);
    std::vector<Piece> pieces;
    for (const Segment& seg : raw) {
      if (seg.id >= 0) {
        ids.push_back(seg.id);
        continue;
      }
      const std::string normalized = normalize(seg.text);
      norm.clear();
      if (normalized_added_.empty()) norm.push_back({normalized, -1, seg.at_start});
      else normalized_added_.split(normalized, seg.at_start, norm);
      for (const Segment& sub : norm) {
        if (sub.id >= 0) {
          ids.push_back(sub.id);
          continue;
        }
        pre_tokenize(sub.text, sub.at_start, pieces);
        for (const Piece& p : pieces) encode_word(p.text, cache, ids);
      }
    }
    if (add_special) ids.insert(ids.end(), suffix_.begin(), suffix_.end());
    return ids;
  }

  std::string decode(std::span<const int32_t> ids) const override {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (const int32_t id : ids) {
      AMLQ_REQUIRE(id >= 0 && id < vocab_size(), "{}: cannot decode token id {} (vocabulary has {} tokens)", path_,
                   id, vocab_size());
      if (!is_special_[static_cast<size_t>(id)]) tokens.push_back(id_to_token_[static_cast<size_t>(id)]);
    }
    for (const DecoderStep& step : decoder_) apply_decoder(step, tokens);
    std::string out;
    for (const auto& t : tokens) out += t;
    return out;
  }

  int vocab_size() const override { return static_cast<int>(id_to_token_.size()); }
  int bos_id() const override { return bos_; }
  int eos_id() const override { return eos_; }
  std::string description() const override { return description_; }

 private:
  [[noreturn]] void unsupported(std::string_view component, const json& j) const {
    AMLQ_FAIL(Input, "{}: unsupported {} {}", path_, component, j.dump().substr(0, 200));
  }

  void parse_model(const json& m) {
    const std::string type = m.value("type", m.contains("merges") ? "BPE" : "");
    if (type != "BPE") AMLQ_FAIL(Input, "{}: unsupported model type '{}' (only BPE is implemented)", path_, type);
    if (m.contains("dropout") && !m["dropout"].is_null() && m["dropout"].get<double>() > 0)
      AMLQ_FAIL(Input, "{}: BPE dropout {} is not supported", path_, m["dropout"].dump());
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
      if (m.contains(key) && m[key].is_string() && !m[key].get<std::string>().empty())
        AMLQ_FAIL(Input, "{}: unsupported BPE option {} = '{}'", path_, key, m[key].get<std::string>());
    byte_fallback_ = m.value("byte_fallback", false);
    fuse_unk_ = m.value("fuse_unk", false);
    ignore_merges_ = m.value("ignore_merges", false);
    for (const auto& [token, id] : m.at("vocab").items()) {
      AMLQ_REQUIRE(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < (1 << 24),
                   "{}: vocab entry '{}' has invalid id {}", path_, token, id.dump());
      set_token(id.get<int32_t>(), token);
      vocab_.emplace(token, id.get<int32_t>());
    }
    AMLQ_REQUIRE(!vocab_.empty(), "{}: model.vocab is empty", path_);
    const json& merges = m.at("merges");
    merges_.reserve(merges.size());
    std::vector<int32_t> mergeable_ids;
    for (size_t rank = 0; rank < merges.size(); ++rank) {
      const json& mj = merges[rank];
      std::string left, right;
      if (mj.is_string()) {
        const std::string s = mj.get<std::string>();
        const size_t sp = s.find(' ');
        AMLQ_REQUIRE(sp != std::string::npos && s.find(' ', sp + 1) == std::string::npos,
                     "{}: merge #{} '{}' is not two space-separated tokens", path_, rank, s);
        left = s.substr(0, sp);
        right = s.substr(sp + 1);
      } else {
        AMLQ_REQUIRE(mj.is_array() && mj.size() == 2 && mj[0].is_string() && mj[1].is_string(),
                     "{}: merge #{} is not a pair of strings: {}", path_, rank, mj.dump());
        left = mj[0].get<std::string>();
        right = mj[1].get<std::string>();
      }
      const auto a = vocab_.find(left), b = vocab_.find(right), ab = vocab_.find(left + right);
      AMLQ_REQUIRE(a != vocab_.end() && b != vocab_.end() && ab != vocab_.end(),
                   "{}: merge #{} ('{}' + '{}') uses a token missing from the vocab", path_, rank, left, right);
      merges_.try_emplace(pair_key(a->second, b->second), BpeMerge{static_cast<double>(rank), ab->second});
      mergeable_ids.push_back(a->second);
      mergeable_ids.push_back(b->second);
    }
    mergeable_.assign(id_to_token_.size(), 0);
    for (const int32_t id : mergeable_ids) mergeable_[static_cast<size_t>(id)] = 1;
    if (m.contains("unk_token") && m["unk_token"].is_string()) {
      const auto it = vocab_.find(m["unk_token"].get<std::string>());
      AMLQ_REQUIRE(it != vocab_.end(), "{}: unk_token '{}' is not in the vocab", path_, m["unk_token"].get<std::string>());
      unk_id_ = it->second;
    }
  }

  void parse_added_tokens(const json& list) {
    for (const json& t : list) {
      AddedToken a;
      a.id = json_value_as<int32_t>(t.at("id"), "added_tokens id", path_);
      a.content = t.at("content").get<std::string>();
      a.special = t.value("special", false);
      a.normalized = t.value("normalized", !a.special);
      a.lstrip = t.value("lstrip", false);
      a.rstrip = t.value("rstrip", false);
      a.single_word = t.value("single_word", false);
      AMLQ_REQUIRE(a.id >= 0 && a.id < (1 << 24), "{}: added token '{}' has invalid id {}", path_, a.content, a.id);
      set_token(a.id, a.content);
      if (a.special) special_ids_.push_back(a.id);
      added_by_content_[a.content] = a.id;
      // Normalized tokens are matched literally in the normalized text (the library
      // normalizes their content first; identical for the normalizers used with them).
      (a.normalized ? normalized_added_ : raw_added_).add(a);
    }
  }

  void parse_normalizer(const json& n) {
    if (n.is_null()) return;
    const std::string type = n.value("type", "");
    if (type == "Sequence") {
      for (const json& sub : n.at("normalizers")) parse_normalizer(sub);
    } else if (type == "Prepend") {
      normalizer_.push_back({NormalizerStep::Kind::Prepend, n.at("prepend").get<std::string>(), ""});
    } else if (type == "Replace" && n.at("pattern").contains("String")) {
      normalizer_.push_back({NormalizerStep::Kind::Replace, n["pattern"]["String"].get<std::string>(),
                             n.at("content").get<std::string>()});
    } else if (type == "NFC") {
      normalizer_.push_back({NormalizerStep::Kind::Nfc, "", ""});
    } else {
      unsupported("normalizer", n);
    }
  }

  void parse_pre_tokenizer(const json& p) {
    if (p.is_null()) return;
    const std::string type = p.value("type", "");
    PreTokenizerStep s{};
    if (type == "Sequence") {
      for (const json& sub : p.at("pretokenizers")) parse_pre_tokenizer(sub);
      return;
    } else if (type == "ByteLevel") {
      s.kind = PreTokenizerStep::Kind::ByteLevel;
      s.add_prefix_space = p.value("add_prefix_space", false);
      s.use_regex = p.value("use_regex", true);
      byte_level_ = true;
      describe_parts_.push_back(s.use_regex ? "ByteLevel(gpt2 regex)" : "ByteLevel");
    } else if (type == "Split") {
      const json& pat = p.at("pattern");
      if (p.value("invert", false)) unsupported("pre-tokenizer (inverted Split)", p);
      const std::string behavior = p.value("behavior", "Isolated");
      if (behavior == "Removed") s.behavior = SplitBehavior::Removed;
      else if (behavior == "Isolated") s.behavior = SplitBehavior::Isolated;
      else if (behavior == "MergedWithPrevious") s.behavior = SplitBehavior::MergedWithPrevious;
      else if (behavior == "MergedWithNext") s.behavior = SplitBehavior::MergedWithNext;
      else unsupported("pre-tokenizer Split behavior", p);
      if (pat.contains("Regex")) {
        const std::string regex = pat["Regex"].get<std::string>();
        const auto known = recognize_split_pattern(regex);
        if (!known)
          AMLQ_FAIL(Input, "{}: unsupported pre-tokenizer Split regex '{}' (known: the GPT-2, Llama-3 and Qwen2 patterns)",
                    path_, regex);
        if (s.behavior != SplitBehavior::Isolated) unsupported("pre-tokenizer Split behavior for a regex", p);
        s.kind = PreTokenizerStep::Kind::SplitRegex;
        s.pattern = *known;
        describe_parts_.push_back(fmt::format("Split({} regex)", split_pattern_name(*known)));
      } else if (pat.contains("String")) {
        s.kind = PreTokenizerStep::Kind::SplitString;
        s.literal = pat["String"].get<std::string>();
        AMLQ_REQUIRE(!s.literal.empty(), "{}: pre-tokenizer Split with an empty string pattern", path_);
        describe_parts_.push_back("Split(string)");
      } else {
        unsupported("pre-tokenizer", p);
      }
    } else if (type == "Metaspace") {
      s.kind = PreTokenizerStep::Kind::Metaspace;
      s.literal = p.value("replacement", "\u2581");
      std::string scheme = p.value("prepend_scheme", "");
      if (scheme.empty()) scheme = p.value("add_prefix_space", true) ? "always" : "never";
      if (scheme == "always") s.prepend = PreTokenizerStep::Prepend::Always;
      else if (scheme == "first") s.prepend = PreTokenizerStep::Prepend::First;
      else if (scheme == "never") s.prepend = PreTokenizerStep::Prepend::Never;
      else unsupported("Metaspace prepend_scheme", p);
      s.split = p.value("split", true);
      describe_parts_.push_back("Metaspace");
    } else {
      unsupported("pre-tokenizer", p);
    }
    pre_tokenizer_.push_back(std::move(s));
  }

  void parse_post_processor(const json& p) {
    if (p.is_null()) return;
    const std::string type = p.value("type", "");
    if (type == "Sequence") {
      for (const json& sub : p.at("processors")) parse_post_processor(sub);
    } else if (type == "ByteLevel") {
      // Only adjusts offsets.
    } else if (type == "TemplateProcessing") {
      bool seen_a = false;
      for (const json& item : p.at("single")) {
        if (item.contains("Sequence")) {
          const std::string seq = item["Sequence"].at("id").get<std::string>();
          if (seq != "A") unsupported("post-processor template item", item);
          seen_a = true;
        } else if (item.contains("SpecialToken")) {
          const std::string name = item["SpecialToken"].at("id").get<std::string>();
          const json& specials = p.at("special_tokens");
          AMLQ_REQUIRE(specials.contains(name), "{}: post-processor template names undefined special token '{}'",
                       path_, name);
          for (const json& id : specials[name].at("ids")) (seen_a ? suffix_ : prefix_).push_back(json_value_as<int32_t>(id, "post_processor ids", path_));
        } else {
          unsupported("post-processor template item", item);
        }
      }
      AMLQ_REQUIRE(seen_a, "{}: post-processor template has no $A", path_);
    } else if (type == "BertProcessing" || type == "RobertaProcessing") {
      prefix_.push_back(json_value_as<int32_t>(p.at("cls").at(1), "post_processor cls", path_));
      suffix_.push_back(json_value_as<int32_t>(p.at("sep").at(1), "post_processor sep", path_));
    } else {
      unsupported("post-processor", p);
    }
  }

  void parse_decoder(const json& d) {
    if (d.is_null()) return;
    const std::string type = d.value("type", "");
    DecoderStep s{};
    if (type == "Sequence") {
      for (const json& sub : d.at("decoders")) parse_decoder(sub);
      return;
    } else if (type == "ByteLevel") {
      s.kind = DecoderStep::Kind::ByteLevel;
    } else if (type == "Replace" && d.at("pattern").contains("String")) {
      s.kind = DecoderStep::Kind::Replace;
      s.a = d["pattern"]["String"].get<std::string>();
      s.b = d.at("content").get<std::string>();
    } else if (type == "ByteFallback") {
      s.kind = DecoderStep::Kind::ByteFallback;
    } else if (type == "Fuse") {
      s.kind = DecoderStep::Kind::Fuse;
    } else if (type == "Strip") {
      s.kind = DecoderStep::Kind::Strip;
      s.a = d.at("content").get<std::string>();
      s.start = d.contains("start") ? json_value_as<int>(d["start"], "decoder Strip start", path_) : 0;
      s.stop = d.contains("stop") ? json_value_as<int>(d["stop"], "decoder Strip stop", path_) : 0;
    } else if (type == "Metaspace") {
      s.kind = DecoderStep::Kind::Metaspace;
      s.a = d.value("replacement", "\u2581");
      std::string scheme = d.value("prepend_scheme", "");
      if (scheme.empty()) scheme = d.value("add_prefix_space", true) ? "always" : "never";
      s.strip_first_space = scheme != "never";
    } else {
      unsupported("decoder", d);
    }
    decoder_.push_back(std::move(s));
  }

  void finish() {
    is_special_.assign(id_to_token_.size(), 0);
    mergeable_.resize(id_to_token_.size(), 0);
    for (const int32_t id : special_ids_) is_special_[static_cast<size_t>(id)] = 1;
    for (const int32_t id : prefix_) AMLQ_REQUIRE(id >= 0 && id < vocab_size(), "{}: post-processor id {} is not a token", path_, id);
    for (const int32_t id : suffix_) AMLQ_REQUIRE(id >= 0 && id < vocab_size(), "{}: post-processor id {} is not a token", path_, id);
    if (byte_level_) {
      const auto& alphabet = byte_level_alphabet();
      for (int b = 0; b < 256; ++b) {
        std::string s;
        unicode::append_utf8(s, alphabet.byte_to_cp[b]);
        const auto it = vocab_.find(s);
        byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
      }
    } else if (byte_fallback_) {
      for (int b = 0; b < 256; ++b) {
        const auto it = vocab_.find(fmt::format("<0x{:02X}>", b));
        byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
      }
    }
    auto first_of = [&](std::initializer_list<const char*> names) {
      for (const char* n : names) {
        if (const auto it = added_by_content_.find(n); it != added_by_content_.end()) return it->second;
      }
      return -1;
    };
    bos_ = !prefix_.empty() ? prefix_.front() : first_of({"<s>", "<|begin_of_text|>", "<bos>"});
    eos_ = first_of({"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>"});
    description_ = fmt::format("tokenizer.json {} BPE ({} tokens, {} merges{}{})",
                               byte_level_ ? "byte-level" : "sentencepiece-style", vocab_size(), merges_.size(),
                               describe_parts_.empty() ? "" : ", ", fmt::join(describe_parts_, " + "));
  }

  void set_token(int32_t id, const std::string& token) {
    if (static_cast<size_t>(id) >= id_to_token_.size()) id_to_token_.resize(static_cast<size_t>(id) + 1);
    id_to_token_[static_cast<size_t>(id)] = token;
  }

  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  std::string normalize(std::string_view text) const {
    std::string s(text);
    for (const NormalizerStep& step : normalizer_) {
      switch (step.kind) {
        case NormalizerStep::Kind::Prepend:
          if (!s.empty()) s.insert(0, step.a);
          break;
        case NormalizerStep::Kind::Replace:
          replace_all(s, step.a, step.b);
          break;
        case NormalizerStep::Kind::Nfc:
          // Below U+0300 every code point is NFC-stable, so ASCII/Latin-1 text is exact.
          // Beyond that composition tables would be needed; real text is almost always NFC already.
          if (!nfc_warned_.load(std::memory_order_relaxed)) {
            std::vector<char32_t> cps;
            std::vector<uint32_t> offsets;
            unicode::decode_utf8(s, cps, offsets);
            if (std::any_of(cps.begin(), cps.end(), [](char32_t c) { return c >= 0x300; }) &&
                !nfc_warned_.exchange(true))
              AMLQ_LOG_WARN("{}: NFC normalization is not implemented; assuming the text is already NFC", path_);
          }
          break;
      }
    }
    return s;
  }

  void pre_tokenize(std::string_view text, bool at_start, std::vector<Piece>& pieces) const {
    pieces.clear();
    pieces.push_back({std::string(text), at_start});
    std::vector<Piece> next;
    std::vector<std::string_view> parts;
    for (const PreTokenizerStep& step : pre_tokenizer_) {
      next.clear();
      for (Piece& piece : pieces) {
        std::string& s = piece.text;
        parts.clear();
        switch (step.kind) {
          case PreTokenizerStep::Kind::ByteLevel:
            if (step.add_prefix_space && !s.starts_with(' ')) s.insert(0, " ");
            if (step.use_regex) split_by_pattern(SplitPattern::Gpt2, s, parts);
            else parts.push_back(s);
            break;
          case PreTokenizerStep::Kind::SplitRegex:
            split_by_pattern(step.pattern, s, parts);
            break;
          case PreTokenizerStep::Kind::SplitString:
            split_literal(s, step.literal, step.behavior, parts);
            break;
          case PreTokenizerStep::Kind::Metaspace:
            replace_all(s, " ", step.literal);
            if (!s.starts_with(step.literal) &&
                (step.prepend == PreTokenizerStep::Prepend::Always ||
                 (step.prepend == PreTokenizerStep::Prepend::First && piece.at_start)))
              s.insert(0, step.literal);
            if (step.split) split_literal(s, step.literal, SplitBehavior::MergedWithNext, parts);
            else parts.push_back(s);
            break;
        }
        for (size_t k = 0; k < parts.size(); ++k)
          if (!parts[k].empty()) next.push_back({std::string(parts[k]), piece.at_start && k == 0});
      }
      std::swap(pieces, next);
    }
  }

  static void split_literal(std::string_view s, std::string_view delim, SplitBehavior behavior,
                            std::vector<std::string_view>& parts) {
    size_t start = 0, hit, pending = 0;  // pending: start of a piece carrying a delimiter forward
    bool carry = false;
    while ((hit = s.find(delim, start)) != std::string_view::npos) {
      const size_t end = hit + delim.size();
      const size_t piece_start = carry ? pending : start;
      switch (behavior) {
        case SplitBehavior::Removed:
          parts.push_back(s.substr(start, hit - start));
          break;
        case SplitBehavior::Isolated:
          parts.push_back(s.substr(start, hit - start));
          parts.push_back(s.substr(hit, delim.size()));
          break;
        case SplitBehavior::MergedWithPrevious:
          parts.push_back(s.substr(start, end - start));
          break;
        case SplitBehavior::MergedWithNext:
          parts.push_back(s.substr(piece_start, hit - piece_start));
          pending = hit;
          carry = true;
          break;
      }
      start = end;
    }
    const size_t tail = carry ? pending : start;
    parts.push_back(s.substr(tail));
  }

  void encode_word(const std::string& word, std::unordered_map<std::string, std::vector<int32_t>>& cache,
                   std::vector<int32_t>& out) const {
    constexpr size_t kMaxCachedWord = 256;
    if (word.size() <= kMaxCachedWord) {
      if (const auto it = cache.find(word); it != cache.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    std::vector<int32_t> ids = bpe_word(word);
    out.insert(out.end(), ids.begin(), ids.end());
    if (word.size() <= kMaxCachedWord) cache.emplace(word, std::move(ids));
  }

  std::vector<int32_t> bpe_word(const std::string& word) const {
    std::vector<int32_t> ids;
    if (ignore_merges_) {
      const auto it = vocab_.find(byte_level_ ? to_byte_level(word) : word);
      if (it != vocab_.end()) return {it->second};
    }
    ids.reserve(word.size());
    bool last_unk = false;
    auto push_unk = [&] {
      if (unk_id_ < 0 || (fuse_unk_ && last_unk)) return;  // no unk token: the library drops the symbol
      ids.push_back(unk_id_);
      last_unk = true;
    };
    if (byte_level_) {
      for (const char c : word) {
        const int32_t id = byte_ids_[static_cast<unsigned char>(c)];
        if (id < 0) {
          push_unk();
        } else {
          ids.push_back(id);
          last_unk = false;
        }
      }
    } else {
      std::string ch;
      for (size_t i = 0; i < word.size();) {
        const size_t len = unicode::utf8_length_at(word, i);
        ch.assign(word, i, len);
        i += len;
        if (const auto it = vocab_.find(ch); it != vocab_.end()) {
          ids.push_back(it->second);
          last_unk = false;
          continue;
        }
        if (byte_fallback_ && std::all_of(ch.begin(), ch.end(), [&](char c) { return byte_ids_[static_cast<unsigned char>(c)] >= 0; })) {
          for (const char c : ch) ids.push_back(byte_ids_[static_cast<unsigned char>(c)]);
          last_unk = false;
          continue;
        }
        push_unk();
      }
    }
    bpe_merge(ids, [&](int32_t a, int32_t b, BpeMerge& m) {
      const auto it = merges_.find(pair_key(a, b));
      if (it == merges_.end()) return false;
      m = it->second;
      return true;
    }, [&](int32_t id) { return !mergeable_[static_cast<size_t>(id)]; });
    return ids;
  }

  static std::string to_byte_level(std::string_view bytes) {
    const auto& alphabet = byte_level_alphabet();
    std::string s;
    for (const char c : bytes) unicode::append_utf8(s, alphabet.byte_to_cp[static_cast<unsigned char>(c)]);
    return s;
  }

  static void apply_decoder(const DecoderStep& step, std::vector<std::string>& tokens) {
    switch (step.kind) {
      case DecoderStep::Kind::ByteLevel: {
        const auto& alphabet = byte_level_alphabet();
        std::vector<char32_t> cps;
        std::vector<uint32_t> offsets;
        for (auto& t : tokens) {
          unicode::decode_utf8(t, cps, offsets);
          std::string bytes;
          for (const char32_t c : cps) {
            const auto it = alphabet.cp_to_byte.find(c);
            if (it != alphabet.cp_to_byte.end()) bytes += static_cast<char>(it->second);
            else unicode::append_utf8(bytes, c);
          }
          t = std::move(bytes);
        }
        break;
      }
      case DecoderStep::Kind::Replace:
        for (auto& t : tokens) replace_all(t, step.a, step.b);
        break;
      case DecoderStep::Kind::ByteFallback:
        for (auto& t : tokens)
          if (const int b = parse_byte_token(t); b >= 0) t = std::string(1, static_cast<char>(b));
        break;
      case DecoderStep::Kind::Fuse: {
        std::string all;
        for (const auto& t : tokens) all += t;
        tokens.assign(1, std::move(all));
        break;
      }
      case DecoderStep::Kind::Strip:
        for (auto& t : tokens) {
          for (int k = 0; k < step.start && t.starts_with(step.a); ++k) t.erase(0, step.a.size());
          for (int k = 0; k < step.stop && t.ends_with(step.a); ++k) t.resize(t.size() - step.a.size());
        }
        break;
      case DecoderStep::Kind::Metaspace:
        for (size_t i = 0; i < tokens.size(); ++i) {
          replace_all(tokens[i], step.a, " ");
          if (i == 0 && step.strip_first_space && tokens[i].starts_with(' ')) tokens[i].erase(0, 1);
        }
        break;
    }
  }

  std::string path_;
  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<char> is_special_;
  std::vector<char> mergeable_;  // by id: appears in some merge (ids from added tokens are not)
  std::vector<int32_t> special_ids_;
  std::unordered_map<std::string, int32_t> added_by_content_;
  std::unordered_map<uint64_t, BpeMerge> merges_;
  int32_t byte_ids_[256] = {};
  int32_t unk_id_ = -1;
  bool byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false, byte_level_ = false;
  AddedTokenSplitter raw_added_, normalized_added_;
  std::vector<NormalizerStep> normalizer_;
  std::vector<PreTokenizerStep> pre_tokenizer_;
  std::vector<DecoderStep> decoder_;
  std::vector<int32_t> prefix_, suffix_;
  int bos_ = -1, eos_ = -1;
  std::vector<std::string> describe_parts_;
  std::string description_;
  mutable std::atomic<bool> nfc_warned_{false};
};

}  // namespace

std::unique_ptr<Tokenizer> parse_hf_tokenizer(std::string_view json_text, const std::string& path) {
  auto tok = std::make_unique<HfBpeTokenizer>(path);
  try {
    const json j = json::parse(json_text.begin(), json_text.end());
    AMLQ_REQUIRE(j.is_object() && j.contains("model"), "{}: not a Hugging Face tokenizer.json (no \"model\")", path);
    tok->load(j);
  } catch (const json::exception& e) {
    AMLQ_FAIL(Input, "{}: malformed tokenizer.json: {}", path, e.what());
  }
  return tok;
}

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  AMLQ_REQUIRE(f, "{}: cannot open tokenizer file", path);
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  AMLQ_REQUIRE(!f.bad(), "{}: read error", path);
  return parse_hf_tokenizer(text, path);
}

}  // namespace amlq
