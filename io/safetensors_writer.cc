#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "io/safetensors.h"

namespace amlq {

void SafetensorsWriter::add(const std::string& name, DType dtype, std::vector<int64_t> shape,
                            std::span<const std::byte> data) {
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  AMLQ_ASSERT(static_cast<uint64_t>(numel) * dtype_size(dtype) == data.size(),
              "tensor '{}': {} bytes for {} elements of {}", name, data.size(), numel, dtype_name(dtype));
  entries_[name] = Entry{dtype, std::move(shape), std::vector<std::byte>(data.begin(), data.end())};
}

void SafetensorsWriter::add_f32(const std::string& name, std::vector<int64_t> shape, std::span<const float> data) {
  add(name, DType::F32, std::move(shape), std::as_bytes(data));
}

void SafetensorsWriter::write(const std::string& path) const {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  uint64_t offset = 0;
  for (const auto& [name, e] : entries_) {
    header[name] = {{"dtype", std::string(dtype_name(e.dtype))},
                    {"shape", e.shape},
                    {"data_offsets", {offset, offset + e.data.size()}}};
    offset += e.data.size();
  }
  std::string text = header.dump();
  // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');
  const uint64_t header_len = text.size();

  AtomicOutput out(path);
  {
    std::ofstream f(out.temp_path(), std::ios::binary | std::ios::trunc);
    if (!f) AMLQ_FAIL(Output, "{}: cannot open for writing", out.temp_path());
    f.write(reinterpret_cast<const char*>(&header_len), 8);
    f.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& [name, e] : entries_)
      f.write(reinterpret_cast<const char*>(e.data.data()), static_cast<std::streamsize>(e.data.size()));
    f.flush();
    if (!f) AMLQ_FAIL(Output, "{}: write failed (disk full?)", out.temp_path());
  }
  out.commit();
}

}  // namespace amlq
