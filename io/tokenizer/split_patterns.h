#pragma once
// The pre-tokenizer regexes of byte-level BPE tokenizers, matched by hand (std::regex
// has no \p{L}). Only these exact patterns are supported; anything else is reported
// by the caller as an unsupported pre-tokenizer.
#include <optional>
#include <string_view>
#include <vector>

namespace amlq {

enum class SplitPattern {
  Gpt2,    // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  Llama3,  // (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  Qwen2,   // as Llama3 with \p{N} (one digit per piece)
};

std::optional<SplitPattern> recognize_split_pattern(std::string_view regex);
std::string_view split_pattern_name(SplitPattern pattern);

// Appends the consecutive matches of `pattern` in `text` (they tile the whole text:
// every code point is matched by some alternative).
void split_by_pattern(SplitPattern pattern, std::string_view text, std::vector<std::string_view>& pieces);

}  // namespace amlq
