#pragma once
// Number formatting shared by the human-readable outputs.
#include <cstdint>
#include <string>

namespace amlq {

// 260032 -> "260,032"; negative numbers keep their sign in front.
inline std::string with_commas(int64_t n) {
  const std::string digits = std::to_string(n);
  std::string s;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0 && digits[i - 1] != '-') s += ',';
    s += digits[i];
  }
  return s;
}

}  // namespace amlq
