#include "export/safetensors_shards.h"

#include <fmt/format.h>

#include <optional>

#include "core/error.h"

namespace amlq {

ShardPlan plan_shards(const std::vector<TensorEntry>& tensors, uint64_t max_shard_bytes, const std::string& stem) {
  AMLQ_ASSERT(max_shard_bytes > 0, "shard limit 0");
  ShardPlan plan;
  plan.max_shard_bytes = max_shard_bytes;
  uint64_t in_shard = 0;
  for (const auto& t : tensors) {
    const uint64_t n = t.nbytes();
    if (plan.shards.empty() || (in_shard > 0 && in_shard + n > max_shard_bytes)) {
      plan.shards.emplace_back();
      in_shard = 0;
    }
    plan.shards.back().push_back(t);
    in_shard += n;
    plan.total_bytes += n;
  }
  if (plan.shards.empty()) plan.shards.emplace_back();
  const size_t count = plan.shards.size();
  for (size_t i = 0; i < count; ++i)
    plan.files.push_back(count == 1 ? stem + ".safetensors"
                                    : fmt::format("{}-{:05d}-of-{:05d}.safetensors", stem, i + 1, count));
  return plan;
}

void write_shards(const std::string& dir, const ShardPlan& plan, const TensorProducer& produce,
                  const std::map<std::string, std::string>& metadata, const std::string& stem) {
  std::vector<TensorDecl> tensors;
  for (const auto& shard : plan.shards) tensors.insert(tensors.end(), shard.begin(), shard.end());
  ShardedSafetensorsWriter::Options options;
  options.max_shard_bytes = plan.max_shard_bytes;
  options.prefix = stem;
  options.metadata = metadata;
  ShardedSafetensorsWriter writer(dir, tensors, options);
  AMLQ_ASSERT(writer.shards().size() == plan.files.size(), "the writer splits {} tensors into {} shards, the plan {}",
              tensors.size(), writer.shards().size(), plan.files.size());
  for (const auto& t : tensors) {
    const std::vector<std::byte> data = produce(t);
    AMLQ_ASSERT(data.size() == t.nbytes(), "tensor '{}': produced {} bytes, its layout needs {}", t.name, data.size(),
                t.nbytes());
    writer.write(t.name, 0, data);
  }
  writer.finish();
}

uint64_t parse_byte_size_option(const std::string& text) {
  const std::optional<uint64_t> bytes = parse_byte_size(text);
  if (!bytes) AMLQ_FAIL(Usage, "'{}' is not a size (e.g. 5GB, 500MB, 2GiB, 123456)", text);
  return *bytes;
}

}  // namespace amlq
