#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace amlq {

namespace fs = std::filesystem;
using json = nlohmann::json;

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t TensorF32::cols() const {
  int64_t n = 1;
  for (size_t i = 1; i < shape.size(); ++i) n *= shape[i];
  return n;
}

namespace {

// The safetensors spec caps the header at 100 MB.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

TensorInfo parse_tensor_entry(const std::string& path, const std::string& name, const json& entry) {
  if (!entry.is_object()) AMLQ_FAIL(Input, "{}: tensor '{}': header entry is not an object", path, name);
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!entry.contains(key)) AMLQ_FAIL(Input, "{}: tensor '{}': header entry has no '{}'", path, name, key);
  TensorInfo t;
  t.name = name;
  if (!entry["dtype"].is_string()) AMLQ_FAIL(Input, "{}: tensor '{}': dtype is not a string", path, name);
  const auto dtype_text = entry["dtype"].get<std::string>();
  const auto dtype = parse_dtype(dtype_text);
  if (!dtype) AMLQ_FAIL(Input, "{}: tensor '{}': unknown dtype '{}'", path, name, dtype_text);
  t.dtype = *dtype;
  const auto& shape = entry["shape"];
  if (!shape.is_array()) AMLQ_FAIL(Input, "{}: tensor '{}': shape is not an array", path, name);
  // The byte count is computed with overflow checks: a shape whose size does not
  // fit in 64 bits cannot match any data_offsets.
  uint64_t expected = dtype_size(t.dtype);
  bool overflow = false;
  for (const auto& d : shape) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0)
      AMLQ_FAIL(Input, "{}: tensor '{}': shape {} has a non-integer or negative dimension", path, name, shape.dump());
    t.shape.push_back(d.get<int64_t>());
    overflow = overflow || __builtin_mul_overflow(expected, static_cast<uint64_t>(t.shape.back()), &expected);
  }
  const auto& offsets = entry["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned())
    AMLQ_FAIL(Input, "{}: tensor '{}': data_offsets must be two non-negative integers", path, name);
  t.begin = offsets[0].get<uint64_t>();
  t.end = offsets[1].get<uint64_t>();
  if (t.end < t.begin)
    AMLQ_FAIL(Input, "{}: tensor '{}': data_offsets [{}, {}) end before they begin", path, name, t.begin, t.end);
  if (overflow)
    AMLQ_FAIL(Input, "{}: tensor '{}': shape {} x {} needs more than 2^64 bytes", path, name, shape.dump(), dtype_text);
  if (t.nbytes() != expected)
    AMLQ_FAIL(Input, "{}: tensor '{}': {} bytes of data but shape {} x {} needs {}", path, name, t.nbytes(),
              shape.dump(), dtype_text, expected);
  return t;
}

json parse_json_or_fail(std::string_view text, const std::string& origin, const char* what) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {  // parse_error, and out_of_range for numbers like 1e400
    AMLQ_FAIL(Input, "{}: {} is not valid JSON: {}", origin, what, e.what());
  }
}

}  // namespace

SafetensorsHeader parse_safetensors_header(std::span<const std::byte> image, const std::string& path) {
  const uint64_t file_size = image.size();
  if (file_size < 8)
    AMLQ_FAIL(Input, "{}: truncated safetensors file ({} bytes, the 8-byte header length is missing)", path,
              file_size);
  uint64_t header_len;
  std::memcpy(&header_len, image.data(), 8);
  if (header_len > kMaxHeaderBytes || header_len > file_size - 8)
    AMLQ_FAIL(Input, "{}: header length {} exceeds the file ({} bytes): truncated or not a safetensors file", path,
              header_len, file_size);
  const json header =
      parse_json_or_fail({reinterpret_cast<const char*>(image.data() + 8), header_len}, path, "the header");
  if (!header.is_object()) AMLQ_FAIL(Input, "{}: header is not a JSON object", path);

  SafetensorsHeader out;
  out.data_offset = 8 + header_len;
  const uint64_t data_size = file_size - out.data_offset;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object()) AMLQ_FAIL(Input, "{}: __metadata__ is not an object", path);
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string()) AMLQ_FAIL(Input, "{}: __metadata__ value '{}' is not a string", path, m.key());
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    TensorInfo t = parse_tensor_entry(path, it.key(), it.value());
    if (t.end > data_size)
      AMLQ_FAIL(Input, "{}: tensor '{}': data_offsets [{}, {}) past the end of the data ({} bytes): file truncated?",
                path, t.name, t.begin, t.end, data_size);
    out.tensors.emplace(t.name, std::move(t));
  }

  // Ranges must not overlap (empty tensors occupy nothing).
  std::vector<const TensorInfo*> by_offset;
  for (const auto& [name, t] : out.tensors)
    if (t.nbytes() > 0) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i]->begin < by_offset[i - 1]->end)
      AMLQ_FAIL(Input, "{}: tensor '{}': data [{}, {}) overlaps tensor '{}' [{}, {})", path, by_offset[i]->name,
                by_offset[i]->begin, by_offset[i]->end, by_offset[i - 1]->name, by_offset[i - 1]->begin,
                by_offset[i - 1]->end);
  }
  return out;
}

std::map<std::string, std::string> parse_safetensors_index(std::string_view json_text, const std::string& origin) {
  const json j = parse_json_or_fail(json_text, origin, "the index");
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    AMLQ_FAIL(Input, "{}: no 'weight_map' object", origin);
  std::map<std::string, std::string> shard_of;
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    if (!it.value().is_string() || it.value().get<std::string>().empty())
      AMLQ_FAIL(Input, "{}: weight_map entry '{}' is not a file name", origin, it.key());
    const std::string shard = it.value().get<std::string>();
    const fs::path shard_path(shard);
    const bool escapes = shard_path.is_absolute() ||
                         std::any_of(shard_path.begin(), shard_path.end(), [](const fs::path& c) { return c == ".."; });
    if (escapes)
      AMLQ_FAIL(Input, "{}: weight_map entry '{}' names '{}', outside the model directory", origin, it.key(), shard);
    shard_of[it.key()] = shard;
  }
  return shard_of;
}

void SafetensorsFile::adopt(std::span<const std::byte> image) {
  SafetensorsHeader header = parse_safetensors_header(image, path_);
  data_ = image.data() + header.data_offset;
  tensors_ = std::move(header.tensors);
  metadata_ = std::move(header.metadata);
}

std::shared_ptr<const SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) AMLQ_FAIL(Input, "{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    AMLQ_FAIL(Input, "{}: cannot stat: {}", path, std::strerror(errno));
  }
  const auto file_size = static_cast<uint64_t>(st.st_size);
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  if (file_size < 8) {  // nothing to map; the parser names the defect
    ::close(fd);
    file->adopt({});
  }
  void* map = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) AMLQ_FAIL(Input, "{}: cannot mmap: {}", path, std::strerror(errno));
  file->map_ = map;
  file->map_size_ = file_size;
  file->adopt({static_cast<const std::byte*>(map), file_size});
  return file;
}

std::shared_ptr<const SafetensorsFile> SafetensorsFile::from_bytes(std::vector<std::byte> image,
                                                                   const std::string& origin) {
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = origin;
  file->owned_ = std::move(image);
  file->adopt(file->owned_);
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_size_);
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) AMLQ_FAIL(Input, "{}: no tensor named '{}'", path_, name);
  return it->second;
}

std::span<const std::byte> SafetensorsFile::raw(const std::string& name) const {
  const auto& t = info(name);
  return {data_ + t.begin, static_cast<size_t>(t.nbytes())};
}

TensorF32 SafetensorsFile::read_f32(const std::string& name) const {
  const auto& t = info(name);
  if (!is_float(t.dtype) && t.dtype != DType::I8 && t.dtype != DType::U8 && t.dtype != DType::I32)
    AMLQ_FAIL(Input, "{}: tensor '{}': dtype {} cannot be read as float", path_, name, dtype_name(t.dtype));
  TensorF32 out;
  out.shape = t.shape;
  out.data.resize(static_cast<size_t>(t.numel()));
  convert_to_f32(t.dtype, data_ + t.begin, out.data.size(), out.data.data());
  return out;
}

Checkpoint Checkpoint::open(const std::string& path) {
  Checkpoint ckpt;
  ckpt.path_ = path;
  fs::path file;
  if (fs::is_directory(path)) {
    const fs::path dir(path);
    const fs::path index = dir / "model.safetensors.index.json";
    if (fs::exists(index)) {
      std::ifstream in(index, std::ios::binary);
      if (!in) AMLQ_FAIL(Input, "{}: cannot open", index.string());
      const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (in.bad()) AMLQ_FAIL(Input, "{}: read error", index.string());
      for (const auto& [name, shard] : parse_safetensors_index(text, index.string())) {
        const fs::path shard_path = dir / shard;
        if (!fs::is_regular_file(shard_path))
          AMLQ_FAIL(Input, "{}: shard {} (for tensor '{}') does not exist", index.string(), shard_path.string(),
                    name);
        ckpt.shard_of_[name] = shard_path.string();
      }
      // Validate that each shard really holds what the index says.
      for (const auto& [name, shard_path] : ckpt.shard_of_) {
        const auto& f = ckpt.shard(name);
        if (!f.has(name))
          AMLQ_FAIL(Input, "{}: index says tensor '{}' is in {}, but that shard does not contain it", index.string(),
                    name, shard_path);
      }
      return ckpt;
    }
    file = dir / "model.safetensors";
    if (!fs::exists(file))
      AMLQ_FAIL(Input, "{}: no model.safetensors or model.safetensors.index.json in this directory", path);
  } else {
    file = path;
    if (!fs::exists(file)) AMLQ_FAIL(Input, "{}: no such file or directory", path);
  }
  auto f = SafetensorsFile::open(file.string());
  for (const auto& [name, t] : f->tensors()) ckpt.shard_of_[name] = file.string();
  ckpt.open_shards_[file.string()] = std::move(f);
  return ckpt;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(shard_of_.size());
  for (const auto& [name, file] : shard_of_) out.push_back(name);
  return out;
}

const std::string& Checkpoint::file_of(const std::string& name) const {
  auto it = shard_of_.find(name);
  if (it == shard_of_.end()) AMLQ_FAIL(Input, "{}: checkpoint has no tensor '{}'", path_, name);
  return it->second;
}

const SafetensorsFile& Checkpoint::shard(const std::string& name) const {
  const std::string& file = file_of(name);
  std::lock_guard<std::mutex> lock(*shards_mutex_);
  auto it = open_shards_.find(file);
  if (it == open_shards_.end()) it = open_shards_.emplace(file, SafetensorsFile::open(file)).first;
  return *it->second;
}

const TensorInfo& Checkpoint::info(const std::string& name) const { return shard(name).info(name); }
std::span<const std::byte> Checkpoint::raw(const std::string& name) const { return shard(name).raw(name); }
TensorF32 Checkpoint::read_f32(const std::string& name) const { return shard(name).read_f32(name); }

void Checkpoint::read_rows_f32(const std::string& name, int64_t first, int64_t count, float* out) const {
  const auto& t = info(name);
  if (t.shape.size() != 2) AMLQ_FAIL(Input, "{}: tensor '{}' is not a matrix", file_of(name), name);
  if (!is_float(t.dtype)) AMLQ_FAIL(Input, "{}: tensor '{}': dtype {} is not floating-point", file_of(name), name,
                                    dtype_name(t.dtype));
  AMLQ_ASSERT(first >= 0 && count >= 0 && first + count <= t.shape[0], "rows [{}, {}) of {} in '{}'", first,
              first + count, t.shape[0], name);
  const int64_t cols = t.shape[1];
  const auto bytes = raw(name);
  const size_t row_bytes = static_cast<size_t>(cols) * dtype_size(t.dtype);
  convert_to_f32(t.dtype, bytes.data() + static_cast<size_t>(first) * row_bytes, static_cast<size_t>(count * cols),
                 out);
}

uint64_t Checkpoint::total_bytes() const {
  uint64_t total = 0;
  for (const auto& [name, file] : shard_of_) total += info(name).nbytes();
  return total;
}

}  // namespace amlq
