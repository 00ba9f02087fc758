#include "io/tokenizer/unicode.h"

#include <algorithm>

namespace amlq::unicode {
namespace {

struct CodePointRange {
  char32_t lo, hi;
};

#include "io/tokenizer/unicode_tables.inc"

template <size_t N>
bool in_ranges(const CodePointRange (&table)[N], char32_t cp) {
  const auto* it = std::upper_bound(std::begin(table), std::end(table), cp,
                                    [](char32_t c, const CodePointRange& r) { return c < r.lo; });
  return it != std::begin(table) && cp <= (it - 1)->hi;
}

bool is_continuation(unsigned char b) { return (b & 0xC0) == 0x80; }

}  // namespace

size_t utf8_length_at(std::string_view s, size_t i) {
  size_t n = 1;
  while (i + n < s.size() && n < 4 && is_continuation(static_cast<unsigned char>(s[i + n]))) ++n;
  return n;
}

void decode_utf8(std::string_view s, std::vector<char32_t>& code_points, std::vector<uint32_t>& offsets) {
  code_points.clear();
  offsets.clear();
  code_points.reserve(s.size());
  offsets.reserve(s.size() + 1);
  size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    offsets.push_back(static_cast<uint32_t>(i));
    if (b0 < 0x80) {
      code_points.push_back(b0);
      ++i;
      continue;
    }
    const size_t need = b0 >= 0xF0 && b0 < 0xF5 ? 4 : b0 >= 0xE0 ? 3 : b0 >= 0xC2 && b0 < 0xE0 ? 2 : 0;
    bool ok = need != 0 && i + need <= s.size();
    char32_t cp = need == 4 ? (b0 & 0x07) : need == 3 ? (b0 & 0x0F) : (b0 & 0x1F);
    for (size_t k = 1; ok && k < need; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      ok = is_continuation(b);
      cp = (cp << 6) | (b & 0x3F);
    }
    // Overlong forms, surrogates and out-of-range values are malformed too.
    if (ok && ((need == 3 && (cp < 0x800 || (cp >= 0xD800 && cp < 0xE000))) || (need == 4 && (cp < 0x10000 || cp > 0x10FFFF))))
      ok = false;
    if (ok) {
      code_points.push_back(cp);
      i += need;
    } else {
      code_points.push_back(0xFFFD);
      ++i;
    }
  }
  offsets.push_back(static_cast<uint32_t>(s.size()));
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool is_letter(char32_t cp) {
  if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
  return in_ranges(kLetterRanges, cp);
}

bool is_number(char32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return in_ranges(kNumberRanges, cp);
}

bool is_whitespace(char32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

}  // namespace amlq::unicode
