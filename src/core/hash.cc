#include "core/hash.h"

#include <fmt/format.h>

#include <cstring>
#include <fstream>
#include <vector>

#include "core/error.h"

namespace amlq {

Hasher& Hasher::update(std::span<const std::byte> bytes) {
  uint64_t h = state_;
  for (std::byte b : bytes) {
    h ^= static_cast<uint64_t>(b);
    h *= 0x100000001b3ull;
  }
  state_ = h;
  return *this;
}

Hasher& Hasher::update(std::string_view text) {
  update(static_cast<uint64_t>(text.size()));
  return update(std::as_bytes(std::span(text.data(), text.size())));
}

Hasher& Hasher::update(uint64_t value) { return update(std::as_bytes(std::span(&value, 1))); }

Hasher& Hasher::update(double value) { return update(std::as_bytes(std::span(&value, 1))); }

std::string Hasher::hex() const { return fmt::format("{:016x}", state_); }

uint64_t hash_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) AMLQ_FAIL(Input, "{}: cannot open for reading", path);
  Hasher h;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto n = static_cast<size_t>(in.gcount());
    h.update(std::as_bytes(std::span(buf.data(), n)));
  }
  return h.digest();
}

}  // namespace amlq
