#include "io/tokenizer/dataset.h"

#include <bit>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <type_traits>

#include "core/error.h"

namespace amlq {
namespace {

static_assert(std::endian::native == std::endian::little, "id files are read as little-endian");

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  AMLQ_REQUIRE(f, "{}: cannot open dataset file", path);
  std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  AMLQ_REQUIRE(!f.bad(), "{}: read error", path);
  return data;
}

template <class T>
std::vector<int32_t> widen(const std::string& path, const char* data, size_t bytes) {
  AMLQ_REQUIRE(bytes % sizeof(T) == 0, "{}: {} bytes is not a whole number of {}-byte ids", path, bytes, sizeof(T));
  const size_t n = bytes / sizeof(T);
  std::vector<int32_t> ids(n);
  for (size_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, data + i * sizeof(T), sizeof(T));
    bool in_range = true;
    if constexpr (std::is_signed_v<T>) in_range = v >= 0;
    if constexpr (sizeof(T) >= 4) in_range = in_range && static_cast<uint64_t>(v) <= INT32_MAX;
    AMLQ_REQUIRE(in_range, "{}: id {} at position {} is out of range", path,
                 static_cast<int64_t>(v), i);
    ids[i] = static_cast<int32_t>(v);
  }
  return ids;
}

// NumPy .npy v1-3: magic, version, header length, a Python-dict header, raw data.
std::vector<int32_t> load_npy(const std::string& path, std::string_view data) {
  AMLQ_REQUIRE(data.size() >= 10 && data.substr(0, 6) == "\x93NUMPY", "{}: not a .npy file (bad magic)", path);
  const int major = static_cast<unsigned char>(data[6]);
  size_t header_len, header_start;
  if (major == 1) {
    header_len = static_cast<unsigned char>(data[8]) | (static_cast<size_t>(static_cast<unsigned char>(data[9])) << 8);
    header_start = 10;
  } else {
    AMLQ_REQUIRE(major == 2 || major == 3, "{}: unsupported .npy version {}", path, major);
    AMLQ_REQUIRE(data.size() >= 12, "{}: truncated .npy header", path);
    uint32_t len;
    std::memcpy(&len, data.data() + 8, 4);
    header_len = len;
    header_start = 12;
  }
  AMLQ_REQUIRE(header_len <= data.size() - header_start, "{}: truncated .npy header", path);
  const std::string_view header = data.substr(header_start, header_len);
  auto value_of = [&](std::string_view key) {
    const size_t k = header.find(fmt::format("'{}'", key));
    AMLQ_REQUIRE(k != std::string_view::npos, "{}: .npy header has no '{}': {}", path, key, header);
    size_t v = header.find(':', k);
    AMLQ_REQUIRE(v != std::string_view::npos, "{}: malformed .npy header: {}", path, header);
    ++v;
    while (v < header.size() && header[v] == ' ') ++v;
    size_t end = v;
    if (v < header.size() && header[v] == '(') {
      end = header.find(')', v);
      AMLQ_REQUIRE(end != std::string_view::npos, "{}: malformed .npy header: {}", path, header);
      return std::string(header.substr(v, end - v + 1));
    }
    while (end < header.size() && header[end] != ',' && header[end] != '}') ++end;
    return std::string(header.substr(v, end - v));
  };
  const std::string descr = value_of("descr");
  std::string shape = value_of("shape");  // fortran_order does not matter for 1-D
  std::erase(shape, ' ');
  // A 1-D shape is "(N,)".
  AMLQ_REQUIRE(shape.size() >= 4 && shape.back() == ')' && shape[shape.size() - 2] == ',' &&
                   shape.find(',') == shape.size() - 2,
               "{}: .npy array must be 1-D, shape is {}", path, shape);
  size_t count = 0;
  const char* count_begin = shape.data() + 1;
  const char* count_end = shape.data() + shape.size() - 2;
  const auto [count_stop, count_error] = std::from_chars(count_begin, count_end, count);
  AMLQ_REQUIRE(count_error == std::errc() && count_stop == count_end, "{}: .npy shape {} is not (N,)", path, shape);
  const char* body = data.data() + header_start + header_len;
  const size_t bytes = data.size() - header_start - header_len;
  std::vector<int32_t> ids;
  if (descr == "'<u2'" || descr == "'|u2'") ids = widen<uint16_t>(path, body, bytes);
  else if (descr == "'<u4'") ids = widen<uint32_t>(path, body, bytes);
  else if (descr == "'<i4'") ids = widen<int32_t>(path, body, bytes);
  else if (descr == "'<i8'") ids = widen<int64_t>(path, body, bytes);
  else AMLQ_FAIL(Input, "{}: .npy dtype {} is not supported (uint16, uint32, int32 or int64 little-endian)", path, descr);
  AMLQ_REQUIRE(ids.size() == count, "{}: .npy shape says {} ids, data holds {}", path, count, ids.size());
  return ids;
}

}  // namespace

DatasetFormat dataset_format(const std::string& path) {
  const std::string ext = std::filesystem::path(path).extension().string();
  if (ext == ".u16") return DatasetFormat::U16;
  if (ext == ".u32") return DatasetFormat::U32;
  if (ext == ".npy") return DatasetFormat::Npy;
  return DatasetFormat::Text;
}

bool is_token_id_file(const std::string& path) { return dataset_format(path) != DatasetFormat::Text; }

std::vector<int32_t> parse_token_ids(std::string_view data, DatasetFormat format, const std::string& path,
                                     const Tokenizer* tokenizer, int vocab_size) {
  std::vector<int32_t> ids;
  switch (format) {
    case DatasetFormat::U16:
      ids = widen<uint16_t>(path, data.data(), data.size());
      break;
    case DatasetFormat::U32:
      ids = widen<uint32_t>(path, data.data(), data.size());
      break;
    case DatasetFormat::Npy:
      ids = load_npy(path, data);
      break;
    case DatasetFormat::Text:
      AMLQ_REQUIRE(tokenizer != nullptr,
                   "{}: a text dataset needs a tokenizer (or pass token ids as .u16/.u32/.npy)", path);
      ids = tokenizer->encode(data, /*add_special=*/true);
      break;
  }
  if (vocab_size > 0) {
    for (size_t i = 0; i < ids.size(); ++i)
      AMLQ_REQUIRE(ids[i] < vocab_size, "{}: token id {} at position {} is outside the vocabulary (size {})", path,
                   ids[i], i, vocab_size);
  }
  return ids;
}

std::vector<int32_t> load_token_ids(const std::string& path, const Tokenizer* tokenizer, int vocab_size) {
  const DatasetFormat format = dataset_format(path);
  if (format == DatasetFormat::Text)
    AMLQ_REQUIRE(tokenizer != nullptr,
                 "{}: a text dataset needs a tokenizer (or pass token ids as .u16/.u32/.npy)", path);
  return parse_token_ids(read_file(path), format, path, tokenizer, vocab_size);
}

std::string CalibrationSpec::describe() const {
  return random_offsets ? fmt::format("{} x {} tokens, random offsets (seed {})", num_samples, seqlen, seed)
                        : fmt::format("{} x {} tokens, consecutive windows", num_samples, seqlen);
}

std::vector<std::vector<int32_t>> sample_calibration(std::span<const int32_t> ids, const CalibrationSpec& spec) {
  AMLQ_REQUIRE(spec.num_samples > 0 && spec.seqlen > 0, "calibration needs positive sample count and length ({})",
               spec.describe());
  const size_t seqlen = static_cast<size_t>(spec.seqlen);
  AMLQ_REQUIRE(ids.size() >= seqlen + 1, "calibration data has {} tokens, needs at least seqlen + 1 = {}", ids.size(),
               seqlen + 1);
  std::vector<std::vector<int32_t>> samples;
  samples.reserve(static_cast<size_t>(spec.num_samples));
  if (spec.random_offsets) {
    // GPTQ draws i in [0, N - seqlen - 1]. mt19937_64's output sequence is fixed by
    // the standard; the modulo (not uniform_int_distribution, whose algorithm is
    // implementation-defined) keeps the offsets identical on every platform.
    std::mt19937_64 rng(spec.seed);
    const uint64_t choices = ids.size() - seqlen;
    for (int s = 0; s < spec.num_samples; ++s) {
      const size_t offset = static_cast<size_t>(rng() % choices);
      samples.emplace_back(ids.begin() + static_cast<ptrdiff_t>(offset),
                           ids.begin() + static_cast<ptrdiff_t>(offset + seqlen));
    }
  } else {
    const size_t windows = ids.size() / seqlen;
    AMLQ_REQUIRE(windows >= static_cast<size_t>(spec.num_samples),
                 "calibration data has {} tokens: only {} whole windows of {}, {} requested", ids.size(), windows,
                 seqlen, spec.num_samples);
    for (int s = 0; s < spec.num_samples; ++s) {
      const auto begin = ids.begin() + static_cast<ptrdiff_t>(static_cast<size_t>(s) * seqlen);
      samples.emplace_back(begin, begin + static_cast<ptrdiff_t>(seqlen));
    }
  }
  return samples;
}

}  // namespace amlq
