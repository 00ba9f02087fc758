#include "export/safetensors_shards.h"

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace amlq {

uint64_t TensorEntry::nbytes() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n * dtype_size(dtype);
}

ShardPlan plan_shards(const std::vector<TensorEntry>& tensors, uint64_t max_shard_bytes, const std::string& stem) {
  AMLQ_ASSERT(max_shard_bytes > 0, "shard limit 0");
  ShardPlan plan;
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

namespace {

void write_one_shard(const std::string& path, const std::vector<TensorEntry>& tensors, const TensorProducer& produce,
                     const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    const uint64_t n = t.nbytes();
    header[t.name] = {{"dtype", std::string(dtype_name(t.dtype))}, {"shape", t.shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string text = header.dump();
  // The data section starts 8-byte aligned, as the reference writer does.
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');
  const uint64_t header_len = text.size();

  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) AMLQ_FAIL(Output, "{}: cannot open for writing", path);
  f.write(reinterpret_cast<const char*>(&header_len), 8);
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto& t : tensors) {
    const std::vector<std::byte> data = produce(t);
    AMLQ_ASSERT(data.size() == t.nbytes(), "tensor '{}': produced {} bytes, its layout needs {}", t.name, data.size(),
                t.nbytes());
    f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
    if (!f) AMLQ_FAIL(Output, "{}: write failed at tensor '{}' (disk full?)", path, t.name);
  }
  f.flush();
  if (!f) AMLQ_FAIL(Output, "{}: write failed (disk full?)", path);
}

}  // namespace

void write_shards(const std::string& dir, const ShardPlan& plan, const TensorProducer& produce,
                  const std::map<std::string, std::string>& metadata, const std::string& stem) {
  namespace fs = std::filesystem;
  for (size_t i = 0; i < plan.shards.size(); ++i)
    write_one_shard((fs::path(dir) / plan.files[i]).string(), plan.shards[i], produce, metadata);
  if (plan.shards.size() < 2) return;
  nlohmann::ordered_json index;
  index["metadata"] = {{"total_size", plan.total_bytes}};
  nlohmann::ordered_json map = nlohmann::ordered_json::object();
  for (size_t i = 0; i < plan.shards.size(); ++i)
    for (const auto& t : plan.shards[i]) map[t.name] = plan.files[i];
  index["weight_map"] = map;
  const std::string path = (fs::path(dir) / (stem + ".safetensors.index.json")).string();
  std::ofstream f(path, std::ios::trunc);
  f << index.dump(2) << "\n";
  if (!f) AMLQ_FAIL(Output, "{}: write failed", path);
}

uint64_t parse_byte_size(const std::string& text) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  std::string unit = text.substr(i);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  double value = 0;
  try {
    size_t used = 0;
    value = std::stod(text.substr(0, i), &used);
    if (used != i) throw std::invalid_argument(text);
  } catch (const std::exception&) {
    AMLQ_FAIL(Usage, "'{}' is not a size (e.g. 5GB, 500MB, 123456)", text);
  }
  double scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  else if (unit == "KB") scale = 1e3;
  else if (unit == "MB") scale = 1e6;
  else if (unit == "GB") scale = 1e9;
  else if (unit == "KIB") scale = 1024.0;
  else if (unit == "MIB") scale = 1024.0 * 1024;
  else if (unit == "GIB") scale = 1024.0 * 1024 * 1024;
  else AMLQ_FAIL(Usage, "'{}': unknown size unit '{}' (B, KB, MB, GB, KiB, MiB, GiB)", text, unit);
  const double bytes = std::floor(value * scale);
  if (!(bytes >= 1)) AMLQ_FAIL(Usage, "'{}' must be at least one byte", text);
  return static_cast<uint64_t>(bytes);
}

}  // namespace amlq
