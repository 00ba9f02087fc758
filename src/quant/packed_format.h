#pragma once
// The packed code layout, declared once and shared by host code, CUDA kernels and
// the HDF5 writer (docs/FORMAT.md describes it for outside readers).
//
// Codes of b bits are packed row by row into little-endian uint32 words as one
// bit stream per row: code j of a row occupies bits [j*b, j*b + b) of that
// row's stream, bit 0 being the least significant bit of word 0. A code may
// straddle two words (b = 3, 5, 6, 7). Each row starts on a fresh word:
// words_per_row = ceil(cols * b / 32). Zeros (b-bit, one per group) use the
// same layout with cols = num_groups.
#include <cstddef>
#include <cstdint>

#include "core/fp16.h"

namespace amlq::packed {

inline constexpr int kWordBits = 32;
inline constexpr int kMinBits = 2;
inline constexpr int kMaxBits = 8;
inline constexpr uint32_t kFormatVersion = 1;

static_assert(sizeof(uint32_t) * 8 == kWordBits, "packed words are 32-bit");
static_assert(kMaxBits <= kWordBits / 2, "a code must fit in two adjacent words");

AMLQ_HD constexpr int64_t words_per_row(int64_t cols, int bits) {
  return (cols * bits + kWordBits - 1) / kWordBits;
}

AMLQ_HD constexpr bool valid_bits(int bits) { return bits >= kMinBits && bits <= kMaxBits; }

// Reads code `col` from a row's word stream.
AMLQ_HD inline uint32_t get_code(const uint32_t* row_words, int64_t col, int bits) {
  const int64_t bit = col * bits;
  const int64_t word = bit / kWordBits;
  const int shift = static_cast<int>(bit % kWordBits);
  const uint32_t mask = (1u << bits) - 1u;
  uint32_t value = row_words[word] >> shift;
  if (shift + bits > kWordBits) value |= row_words[word + 1] << (kWordBits - shift);
  return value & mask;
}

// Writes code `col` into a zero-initialized row's word stream.
AMLQ_HD inline void put_code(uint32_t* row_words, int64_t col, int bits, uint32_t code) {
  const int64_t bit = col * bits;
  const int64_t word = bit / kWordBits;
  const int shift = static_cast<int>(bit % kWordBits);
  row_words[word] |= code << shift;
  if (shift + bits > kWordBits) row_words[word + 1] |= code >> (kWordBits - shift);
}

static_assert(words_per_row(32, 4) == 4);
static_assert(words_per_row(33, 3) == 4);
static_assert(words_per_row(1, 2) == 1);

}  // namespace amlq::packed
