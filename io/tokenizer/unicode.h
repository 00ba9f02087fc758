#pragma once
// The little Unicode the tokenizers need: UTF-8 stepping and the classes behind
// the pre-tokenizer regexes (\p{L}, \p{N}, \s).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace amlq::unicode {

// Length of the UTF-8 sequence starting at s[i]: a lead byte plus the continuation
// bytes that follow it (at most 4 in all); a stray byte counts as 1. Never 0.
size_t utf8_length_at(std::string_view s, size_t i);

// Decodes s into code points with each one's byte offset (offsets has one extra
// entry, s.size()). Malformed bytes decode to U+FFFD one byte at a time.
void decode_utf8(std::string_view s, std::vector<char32_t>& code_points, std::vector<uint32_t>& offsets);

void append_utf8(std::string& out, char32_t cp);

bool is_letter(char32_t cp);      // general category L*
bool is_number(char32_t cp);      // general category N*
bool is_whitespace(char32_t cp);  // White_Space property (regex \s)

}  // namespace amlq::unicode
