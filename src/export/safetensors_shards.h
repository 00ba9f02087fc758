#pragma once
// Sharded safetensors written one tensor at a time for the exporters: the layout
// (names, dtypes, shapes) is planned first, then every tensor's bytes are
// produced on demand and streamed into io's ShardedSafetensorsWriter (the one
// writer of HF checkpoints, io/safetensors.h: HF's shard split and names,
// temporaries renamed into place, model.safetensors.index.json with more than one
// shard), so an export never holds more than one tensor.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "io/dtype.h"
#include "io/safetensors.h"

namespace amlq {

using TensorEntry = TensorDecl;

struct ShardPlan {
  std::vector<std::string> files;                 // one per shard, relative to the output directory
  std::vector<std::vector<TensorEntry>> shards;   // tensors of each file, in write order
  uint64_t total_bytes = 0;                       // tensor data of all shards
  uint64_t max_shard_bytes = 0;
};

// Hugging Face's default shard limit (5 GB, decimal).
inline constexpr uint64_t kDefaultMaxShardBytes = 5'000'000'000ull;

// Splits `tensors` (kept in order) into shards of at most max_shard_bytes of
// data, by the rule ShardedSafetensorsWriter applies; a tensor larger than the
// limit gets a shard of its own. One shard is named "<stem>.safetensors",
// several "<stem>-0000i-of-0000n.safetensors".
ShardPlan plan_shards(const std::vector<TensorEntry>& tensors, uint64_t max_shard_bytes,
                      const std::string& stem = "model");

// Produces the bytes of one tensor (exactly entry.nbytes() of them).
using TensorProducer = std::function<std::vector<std::byte>(const TensorEntry& entry)>;

// Writes every shard of `plan` into `dir` (which must exist), calling `produce`
// once per tensor in plan order, and, with more than one shard,
// "<stem>.safetensors.index.json". Throws Output naming the file on a write
// failure and Internal when `produce` returns the wrong number of bytes.
void write_shards(const std::string& dir, const ShardPlan& plan, const TensorProducer& produce,
                  const std::map<std::string, std::string>& metadata, const std::string& stem = "model");

// parse_byte_size (io/safetensors.h) as a command-line value: Usage error when malformed.
uint64_t parse_byte_size_option(const std::string& text);

}  // namespace amlq
