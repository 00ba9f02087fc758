#pragma once
// safetensors checkpoints: one file, or shards listed by model.safetensors.index.json.
// Files are memory-mapped and headers validated on open; tensor data is only
// touched when a tensor is read, so a rank pages in only the tensors it owns.
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
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

// The validated header of a safetensors byte image: 8-byte little-endian header
// length, JSON header, data section. Every tensor's range lies inside the data
// section and no two ranges overlap.
struct SafetensorsHeader {
  std::map<std::string, TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;  // where the data section starts in the image
};

// Parses and validates the header of a whole file image; throws Input naming
// `origin` (and the tensor) on any defect. The one parser behind SafetensorsFile.
SafetensorsHeader parse_safetensors_header(std::span<const std::byte> image, const std::string& origin);

// model.safetensors.index.json: tensor name -> shard file name (relative to the
// index's directory; absolute paths and '..' are rejected).
std::map<std::string, std::string> parse_safetensors_index(std::string_view json_text, const std::string& origin);

class SafetensorsFile {
 public:
  // Maps and validates the file; throws Input naming the file (and tensor) on any defect.
  static std::shared_ptr<const SafetensorsFile> open(const std::string& path);
  // The same from bytes already in memory (`origin` names them in errors).
  static std::shared_ptr<const SafetensorsFile> from_bytes(std::vector<std::byte> image, const std::string& origin);
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
  void adopt(std::span<const std::byte> image);  // parses the header of image into this
  std::string path_;
  void* map_ = nullptr;          // open(): the mapping
  size_t map_size_ = 0;
  std::vector<std::byte> owned_;  // from_bytes(): the image
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

// Builds a safetensors file in memory and writes it atomically. For small files
// (tests, tokenizers); a model's weights go through ShardedSafetensorsWriter.
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

// A tensor to be written: its name, dtype and shape, declared before any byte.
struct TensorDecl {
  std::string name;
  DType dtype = DType::BF16;
  std::vector<int64_t> shape;
  int64_t numel() const;
  uint64_t nbytes() const { return static_cast<uint64_t>(numel()) * dtype_size(dtype); }
};

// Streams a checkpoint into a directory the way Hugging Face's save_pretrained
// lays it out, never holding more than the caller's pieces in memory:
//
//   DIR/model-00001-of-0000N.safetensors ... model-0000N-of-0000N.safetensors
//   DIR/model.safetensors.index.json   {"metadata": {"total_size": B}, "weight_map": {tensor: file}}
//
// or DIR/model.safetensors alone when everything fits in one shard (as HF does).
//
// Sharding follows huggingface_hub's split_state_dict_into_shards_factory: the
// tensors are taken in declaration order (give them in HF state_dict order:
// embed_tokens, then per layer q, k, v, o, gate, up, down, input_layernorm,
// post_attention_layernorm, then norm, lm_head), a shard is closed when the next
// tensor would take it past max_shard_bytes, and a tensor larger than that gets a
// shard of its own. Inside a shard the data follows the safetensors library's
// order (larger dtypes first, then by name), the header is compact JSON with
// __metadata__ first, padded with spaces to 8 bytes. The index is written with
// sorted keys and two-space indent, like json.dumps(..., indent=2, sort_keys=True).
//
// Use:
//   ShardedSafetensorsWriter w(dir, {{"model.embed_tokens.weight", DType::BF16, {32000, 4096}}, ...},
//                              {.max_shard_bytes = *parse_byte_size("5GB")});
//   w.write("model.embed_tokens.weight", 0, bytes);            // raw bytes at a byte offset, or
//   w.write_f32("model.norm.weight", 0, values);               // float32 converted to the dtype
//   w.finish();                                                // index last; throws if a byte is missing
//
// Pieces may come in any order and from several threads at once (positioned
// writes, no shared file position), so a caller can produce row blocks in
// parallel; every byte of every tensor must be written exactly once. A shard's
// file is created on its first write and closed (and fdatasync'ed, unless
// Options::sync is off) as soon as its last byte lands, so writing tensors in
// declaration order keeps one or two files open.
//
// Atomic: shards are written under temporary names (FILE.tmp.PID) and renamed
// into place by finish(), then the index is written (also atomically). Until
// finish() returns, DIR holds no index and no shard under its final name; a
// writer destroyed without finish() (an exception) removes its temporaries. On
// construction the writer deletes what a previous checkpoint left under the
// names it owns (the index, PREFIX.safetensors, PREFIX-NNNNN-of-NNNNN.safetensors
// and their temporaries), so DIR never mixes shards of two checkpoints. Files it
// does not own (config.json, tokenizer files) are the caller's; write config.json
// after finish(), as the marker of a complete checkpoint.
//
// Every failed open/write/sync/rename throws Output naming the file; misuse
// (an undeclared tensor, a write past a tensor's end or into a completed shard,
// finish() with bytes missing) throws Internal.
//
// For exporters (issue 12): tensors of different dtypes can share a checkpoint
// (packed I32 words next to F16 scales); write raw bytes with write(). Refuse
// an output directory that is the source checkpoint, since the writer deletes
// the model*.safetensors files there on construction.
class ShardedSafetensorsWriter {
 public:
  struct Options {
    uint64_t max_shard_bytes = 5'000'000'000;  // HF's default "5GB"
    std::string prefix = "model";              // file names: PREFIX-00001-of-00002.safetensors
    std::map<std::string, std::string> metadata = {{"format", "pt"}};  // each shard's __metadata__
    bool sync = true;  // fdatasync each shard when complete, before it is renamed into place
  };
  struct Shard {
    std::string file_name;        // final name inside dir
    std::vector<size_t> tensors;  // indices into tensors(), in data order
    uint64_t header_bytes = 0;    // 8 + header length
    uint64_t data_bytes = 0;
    uint64_t file_bytes() const { return header_bytes + data_bytes; }
  };

  ShardedSafetensorsWriter(std::string dir, std::vector<TensorDecl> tensors, Options options);
  ShardedSafetensorsWriter(std::string dir, std::vector<TensorDecl> tensors)
      : ShardedSafetensorsWriter(std::move(dir), std::move(tensors), Options{}) {}
  ~ShardedSafetensorsWriter();
  ShardedSafetensorsWriter(const ShardedSafetensorsWriter&) = delete;
  ShardedSafetensorsWriter& operator=(const ShardedSafetensorsWriter&) = delete;

  const std::string& dir() const { return dir_; }
  const std::vector<TensorDecl>& tensors() const { return tensors_; }
  const std::vector<Shard>& shards() const { return shards_; }
  bool sharded() const { return shards_.size() > 1; }  // false: one model.safetensors, no index
  uint64_t total_bytes() const { return total_bytes_; }  // tensor data, the index's total_size
  size_t index_of(const std::string& name) const;  // Internal error for an undeclared name

  // Writes data at byte `offset` of tensor `name`'s data. Thread-safe.
  void write(const std::string& name, uint64_t offset, std::span<const std::byte> data);
  void write(size_t tensor, uint64_t offset, std::span<const std::byte> data);
  // Converts values to the tensor's dtype (F32, F16 or BF16, round to nearest
  // even) and writes them from element `first_element`. Thread-safe.
  void write_f32(const std::string& name, int64_t first_element, std::span<const float> values);
  void write_f32(size_t tensor, int64_t first_element, std::span<const float> values);

  // Checks that every tensor received all its bytes, renames the shards into
  // place, then writes the index. Output error (and nothing renamed) if a
  // tensor is incomplete.
  void finish();

 private:
  struct ShardState;
  int open_shard(size_t shard);          // its fd; creates the file (with its header) on first use
  void create_file(ShardState& shard);   // mutex_ held
  void close_shard(ShardState& shard);

  std::string dir_;
  Options options_;
  std::vector<TensorDecl> tensors_;
  std::vector<Shard> shards_;
  std::vector<size_t> shard_of_;       // tensor -> shard
  std::vector<uint64_t> data_offset_;  // tensor -> offset in its shard's file (header included)
  std::vector<std::unique_ptr<std::atomic<uint64_t>>> written_;  // tensor -> bytes received
  std::vector<std::unique_ptr<ShardState>> states_;
  std::map<std::string, size_t> index_;
  std::mutex mutex_;  // guards opening and closing shard files
  uint64_t total_bytes_ = 0;
  bool finished_ = false;
};

// Sizes as save_pretrained's max_shard_size spells them: "5GB" = 5e9 bytes,
// "500MiB" = 500 * 2^20, "1.5GB", "4096" (bytes). KB/MB/GB/TB are powers of
// 1000, KiB/MiB/GiB/TiB of 1024; units are case-insensitive. nullopt when
// malformed or zero.
std::optional<uint64_t> parse_byte_size(std::string_view text);

}  // namespace amlq
