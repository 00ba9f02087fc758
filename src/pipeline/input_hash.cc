#include "pipeline/input_hash.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <vector>

#include "core/error.h"
#include "core/hash.h"

namespace amlq {

std::string hash_model(const ModelConfig& config, const Checkpoint& checkpoint) {
  Hasher h;
  h.update(config.source_json);
  std::set<std::string> files;
  for (const auto& name : checkpoint.names()) {
    const auto& info = checkpoint.info(name);
    h.update(name).update(std::string(dtype_name(info.dtype)));
    for (int64_t d : info.shape) h.update(static_cast<uint64_t>(d));
    h.update(info.begin).update(info.end);
    files.insert(checkpoint.file_of(name));
  }
  constexpr std::streamsize kEdge = 1 << 20;
  std::vector<char> buf(kEdge);
  for (const auto& file : files) {
    const auto size = static_cast<std::streamsize>(std::filesystem::file_size(file));
    h.update(static_cast<uint64_t>(size));
    std::ifstream in(file, std::ios::binary);
    if (!in) AMLQ_FAIL(Input, "{}: cannot open for reading", file);
    for (std::streamsize offset : {std::streamsize{0}, std::max<std::streamsize>(0, size - kEdge)}) {
      in.seekg(offset);
      in.read(buf.data(), std::min(kEdge, size));
      h.update(std::as_bytes(std::span(buf.data(), static_cast<size_t>(in.gcount()))));
      in.clear();
    }
  }
  return h.hex();
}

std::string hash_data_file(const std::string& path) {
  Hasher h;
  h.update(hash_file(path));
  return h.hex();
}

}  // namespace amlq
