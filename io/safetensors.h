#pragma once
// safetensors checkpoints: one file, or shards listed by model.safetensors.index.json.
// Files are memory-mapped and headers validated on open; tensor data is only
// touched when a tensor is read, so a rank pages in only the tensors it owns.
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "io/dtype.h"

namespace amlq {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets into the data section
  uint64_t end = 0;
  int64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

// A tensor converted to float32, row-major.
struct TensorF32 {
  std::vector<int64_t> shape;
  std::vector<float> data;
  int64_t rows() const { return shape.empty() ? 1 : shape[0]; }
  int64_t cols() const;  // product of the trailing dims (1 for a vector)
};

class SafetensorsFile {
 public:
  // Maps and validates the file; throws Input naming the file (and tensor) on any defect.
  static std::shared_ptr<const SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;
  std::span<const std::byte> raw(const std::string& name) const;
  TensorF32 read_f32(const std::string& name) const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  const std::byte* data_ = nullptr;  // start of the data section
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A model's weights: a directory with model.safetensors or an index of shards,
// or a single .safetensors file. Shards are opened on first use.
class Checkpoint {
 public:
  static Checkpoint open(const std::string& path);

  const std::string& path() const { return path_; }
  std::vector<std::string> names() const;
  bool has(const std::string& name) const { return shard_of_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;
  std::span<const std::byte> raw(const std::string& name) const;
  TensorF32 read_f32(const std::string& name) const;
  // Rows [first, first + count) of a 2-D tensor converted to float32 (only
  // those pages of the mapping are touched).
  void read_rows_f32(const std::string& name, int64_t first, int64_t count, float* out) const;
  // Bytes of every tensor in the file(s), in their stored dtypes.
  uint64_t total_bytes() const;
  // The file a tensor lives in (for error messages and resume hashes).
  const std::string& file_of(const std::string& name) const;

 private:
  const SafetensorsFile& shard(const std::string& name) const;
  std::string path_;
  std::map<std::string, std::string> shard_of_;  // tensor -> file path
  // Shards open on first use; worker threads read tensors concurrently.
  mutable std::shared_ptr<std::mutex> shards_mutex_ = std::make_shared<std::mutex>();
  mutable std::map<std::string, std::shared_ptr<const SafetensorsFile>> open_shards_;
};

// Builds a safetensors file in memory and writes it atomically.
class SafetensorsWriter {
 public:
  void add(const std::string& name, DType dtype, std::vector<int64_t> shape, std::span<const std::byte> data);
  void add_f32(const std::string& name, std::vector<int64_t> shape, std::span<const float> data);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  void write(const std::string& path) const;

 private:
  struct Entry {
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<std::byte> data;
  };
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace amlq
