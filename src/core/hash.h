#pragma once
// Content hashes for resume checks: a stage's output records the hash of its
// inputs (model, data, options) and is reused only when they match.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace amlq {

// 64-bit FNV-1a, streaming. Not cryptographic: it detects changed inputs.
class Hasher {
 public:
  Hasher& update(std::span<const std::byte> bytes);
  Hasher& update(std::string_view text);
  Hasher& update(uint64_t value);
  Hasher& update(double value);
  uint64_t digest() const { return state_; }
  std::string hex() const;

 private:
  uint64_t state_ = 0xcbf29ce484222325ull;
};

// Hash of a file's contents (mmapped, streamed).
uint64_t hash_file(const std::string& path);

}  // namespace amlq
