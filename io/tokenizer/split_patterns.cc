#include "io/tokenizer/split_patterns.h"

#include <string>

#include "io/tokenizer/unicode.h"

namespace amlq {
namespace {

constexpr std::string_view kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

using unicode::is_letter;
using unicode::is_number;
using unicode::is_whitespace;

bool is_other(char32_t c) { return !is_whitespace(c) && !is_letter(c) && !is_number(c); }
bool is_newline(char32_t c) { return c == '\r' || c == '\n'; }

// Matches over code points; returns the match length in code points (0: no match).
class Matcher {
 public:
  Matcher(const std::vector<char32_t>& cps) : c_(cps), n_(cps.size()) {}

  char32_t at(size_t i) const { return i < n_ ? c_[i] : 0; }

  // 's|'t|'re|'ve|'m|'ll|'d, optionally case-insensitive.
  size_t contraction(size_t i, bool ignore_case) const {
    if (at(i) != '\'') return 0;
    auto lower = [&](size_t k) -> char32_t {
      const char32_t c = at(k);
      return ignore_case && c >= 'A' && c <= 'Z' ? c + 32 : c;
    };
    const char32_t a = lower(i + 1), b = lower(i + 2);
    if (i + 1 >= n_) return 0;
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (i + 2 < n_ && ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))) return 3;
    return 0;
  }

  template <class Pred>
  size_t run(size_t i, Pred pred, size_t max = SIZE_MAX) const {
    size_t k = i;
    while (k < n_ && k - i < max && pred(c_[k])) ++k;
    return k - i;
  }

  // ` ?X+` for a class X.
  template <class Pred>
  size_t space_then_run(size_t i, Pred pred) const {
    const size_t j = i + (at(i) == ' ' ? 1 : 0);
    const size_t r = j < n_ ? run(j, pred) : 0;
    return r ? j - i + r : 0;
  }

  // \s+(?!\S) then \s+: a whitespace run, minus its last character when a
  // non-space follows and the run is longer than one.
  size_t trailing_whitespace(size_t i) const {
    const size_t r = run(i, is_whitespace);
    if (r == 0) return 0;
    if (i + r == n_ || r == 1) return r;
    return r - 1;
  }

  size_t gpt2(size_t i) const {
    if (size_t m = contraction(i, false)) return m;
    if (size_t m = space_then_run(i, is_letter)) return m;
    if (size_t m = space_then_run(i, is_number)) return m;
    if (size_t m = space_then_run(i, is_other)) return m;
    return trailing_whitespace(i);
  }

  size_t llama3(size_t i, size_t max_digits) const {
    if (size_t m = contraction(i, true)) return m;
    // [^\r\n\p{L}\p{N}]?\p{L}+
    const char32_t c = c_[i];
    if (!is_newline(c) && !is_letter(c) && !is_number(c) && is_letter(at(i + 1)) && i + 1 < n_)
      return 1 + run(i + 1, is_letter);
    if (is_letter(c)) return run(i, is_letter);
    if (is_number(c)) return run(i, is_number, max_digits);
    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    if (size_t m = space_then_run(i, is_other)) return m + run(i + m, is_newline);
    // \s*[\r\n]+: the whitespace run up to its last line break.
    const size_t r = run(i, is_whitespace);
    for (size_t k = i + r; k > i; --k)
      if (is_newline(c_[k - 1])) return k - i;
    return trailing_whitespace(i);
  }

 private:
  const std::vector<char32_t>& c_;
  size_t n_;
};

}  // namespace

std::optional<SplitPattern> recognize_split_pattern(std::string_view regex) {
  if (regex == kGpt2Regex) return SplitPattern::Gpt2;
  if (regex == kLlama3Regex) return SplitPattern::Llama3;
  if (regex == kQwen2Regex) return SplitPattern::Qwen2;
  return std::nullopt;
}

std::string_view split_pattern_name(SplitPattern pattern) {
  switch (pattern) {
    case SplitPattern::Gpt2: return "gpt2";
    case SplitPattern::Llama3: return "llama3";
    case SplitPattern::Qwen2: return "qwen2";
  }
  return "?";
}

void split_by_pattern(SplitPattern pattern, std::string_view text, std::vector<std::string_view>& pieces) {
  thread_local std::vector<char32_t> cps;
  thread_local std::vector<uint32_t> offsets;
  unicode::decode_utf8(text, cps, offsets);
  const Matcher m(cps);
  size_t i = 0;
  while (i < cps.size()) {
    size_t len = pattern == SplitPattern::Gpt2     ? m.gpt2(i)
                 : pattern == SplitPattern::Llama3 ? m.llama3(i, 3)
                                                   : m.llama3(i, 1);
    if (len == 0) len = 1;  // cannot happen (the alternatives cover every class); stay total anyway
    pieces.push_back(text.substr(offsets[i], offsets[i + len] - offsets[i]));
    i += len;
  }
}

}  // namespace amlq
