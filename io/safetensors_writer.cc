#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
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

// ---------------------------------------------------------------------------
// ShardedSafetensorsWriter

namespace amlq {

namespace {

namespace fs = std::filesystem;

// Bytes converted per write_f32 step, so a caller's huge span needs only this much scratch.
constexpr size_t kConvertChunk = 1 << 16;

std::string shard_file_name(const std::string& prefix, size_t index, size_t count) {
  if (count == 1) return prefix + ".safetensors";
  return fmt::format("{}-{:05d}-of-{:05d}.safetensors", prefix, index + 1, count);
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Names a writer with this prefix owns: PREFIX.safetensors, PREFIX-NNNNN-of-NNNNN.safetensors,
// PREFIX.safetensors.index.json, and any of those followed by ".tmp.PID".
bool owned_name(std::string_view name, const std::string& prefix) {
  if (const size_t tmp = name.rfind(".tmp."); tmp != std::string_view::npos && all_digits(name.substr(tmp + 5)))
    name = name.substr(0, tmp);
  if (name.substr(0, prefix.size()) != prefix) return false;
  std::string_view rest = name.substr(prefix.size());
  if (rest == ".safetensors" || rest == ".safetensors.index.json") return true;
  // -00001-of-00002.safetensors
  if (rest.size() != std::string_view("-00001-of-00002.safetensors").size()) return false;
  return rest[0] == '-' && all_digits(rest.substr(1, 5)) && rest.substr(6, 4) == "-of-" &&
         all_digits(rest.substr(10, 5)) && rest.substr(15) == ".safetensors";
}

void pwrite_all(int fd, const std::byte* data, size_t size, uint64_t offset, const std::string& path) {
  while (size > 0) {
    const ssize_t n = ::pwrite(fd, data, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      AMLQ_FAIL(Output, "{}: write of {} bytes at offset {} failed: {}", path, size, offset, std::strerror(errno));
    }
    if (n == 0) AMLQ_FAIL(Output, "{}: write at offset {} wrote nothing (disk full?)", path, offset);
    data += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
}

}  // namespace

int64_t TensorDecl::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

struct ShardedSafetensorsWriter::ShardState {
  std::unique_ptr<AtomicOutput> output;  // the temporary file, renamed by finish()
  std::string header;                    // 8-byte length + JSON, written when the file is created
  int fd = -1;
  bool created = false;
  bool closed = false;
  std::atomic<uint64_t> written{0};
};

ShardedSafetensorsWriter::ShardedSafetensorsWriter(std::string dir, std::vector<TensorDecl> tensors,
                                                   Options options)
    : dir_(std::move(dir)), options_(std::move(options)), tensors_(std::move(tensors)) {
  if (options_.max_shard_bytes == 0) AMLQ_FAIL(Usage, "{}: the maximum shard size must be positive", dir_);
  if (options_.prefix.empty() || options_.prefix.find('/') != std::string::npos)
    AMLQ_FAIL(Usage, "{}: shard file prefix '{}' must be a plain file name", dir_, options_.prefix);
  if (tensors_.empty()) AMLQ_FAIL(Internal, "{}: a checkpoint needs at least one tensor", dir_);
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const TensorDecl& t = tensors_[i];
    if (t.name.empty() || t.name == "__metadata__") AMLQ_FAIL(Internal, "{}: invalid tensor name '{}'", dir_, t.name);
    for (int64_t d : t.shape)
      if (d < 0) AMLQ_FAIL(Internal, "{}: tensor '{}' has a negative dimension", dir_, t.name);
    if (!index_.emplace(t.name, i).second) AMLQ_FAIL(Internal, "{}: tensor '{}' declared twice", dir_, t.name);
    total_bytes_ += t.nbytes();
  }

  // Plan the shards as huggingface_hub does (see the header).
  std::vector<std::vector<size_t>> groups;
  std::vector<size_t> current;
  uint64_t current_bytes = 0;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const uint64_t bytes = tensors_[i].nbytes();
    if (bytes > options_.max_shard_bytes) {
      groups.push_back({i});
      continue;
    }
    if (current_bytes + bytes > options_.max_shard_bytes) {
      groups.push_back(std::move(current));
      current.clear();
      current_bytes = 0;
    }
    current.push_back(i);
    current_bytes += bytes;
  }
  if (!current.empty()) groups.push_back(std::move(current));

  shard_of_.assign(tensors_.size(), 0);
  data_offset_.assign(tensors_.size(), 0);
  for (size_t s = 0; s < groups.size(); ++s) {
    std::vector<size_t>& order = groups[s];
    // The safetensors library's data order: larger dtypes first, then by name.
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      const size_t sa = dtype_size(tensors_[a].dtype), sb = dtype_size(tensors_[b].dtype);
      return sa != sb ? sa > sb : tensors_[a].name < tensors_[b].name;
    });
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!options_.metadata.empty()) header["__metadata__"] = options_.metadata;
    uint64_t offset = 0;
    for (size_t i : order) {
      const TensorDecl& t = tensors_[i];
      header[t.name] = {{"dtype", std::string(dtype_name(t.dtype))},
                        {"shape", t.shape},
                        {"data_offsets", {offset, offset + t.nbytes()}}};
      offset += t.nbytes();
    }
    std::string text = header.dump();
    while ((8 + text.size()) % 8 != 0) text.push_back(' ');
    Shard shard;
    shard.file_name = shard_file_name(options_.prefix, s, groups.size());
    shard.header_bytes = 8 + text.size();
    shard.data_bytes = offset;
    for (size_t i : order) {
      shard_of_[i] = s;
      data_offset_[i] = shard.header_bytes + (header[tensors_[i].name]["data_offsets"][0].get<uint64_t>());
    }
    shard.tensors = std::move(order);
    auto state = std::make_unique<ShardState>();
    const uint64_t header_len = text.size();
    state->header.resize(8);
    std::memcpy(state->header.data(), &header_len, 8);
    state->header += text;
    shards_.push_back(std::move(shard));
    states_.push_back(std::move(state));
  }
  for (size_t i = 0; i < tensors_.size(); ++i) written_.push_back(std::make_unique<std::atomic<uint64_t>>(0));

  // Make the directory and clear what an earlier checkpoint left under our names.
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec || !fs::is_directory(dir_)) AMLQ_FAIL(Output, "{}: cannot create the directory: {}", dir_, ec.message());
  std::vector<fs::path> stale;
  for (const auto& entry : fs::directory_iterator(dir_, ec))
    if (owned_name(entry.path().filename().string(), options_.prefix)) stale.push_back(entry.path());
  if (ec) AMLQ_FAIL(Output, "{}: cannot list the directory: {}", dir_, ec.message());
  // The index first, so the directory never shows a complete-looking mix.
  std::sort(stale.begin(), stale.end(), [](const fs::path& a, const fs::path& b) {
    const bool ai = a.string().ends_with(".index.json"), bi = b.string().ends_with(".index.json");
    return ai != bi ? ai : a < b;
  });
  for (const fs::path& p : stale)
    if (!fs::remove(p, ec) && ec) AMLQ_FAIL(Output, "{}: cannot remove the old file: {}", p.string(), ec.message());
  for (size_t s = 0; s < shards_.size(); ++s)
    states_[s]->output = std::make_unique<AtomicOutput>((fs::path(dir_) / shards_[s].file_name).string());
}

ShardedSafetensorsWriter::~ShardedSafetensorsWriter() {
  for (auto& s : states_)
    if (s->fd >= 0) ::close(s->fd);
  // The AtomicOutputs remove the temporaries that finish() did not rename.
}

size_t ShardedSafetensorsWriter::index_of(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) AMLQ_FAIL(Internal, "{}: tensor '{}' was not declared", dir_, name);
  return it->second;
}

int ShardedSafetensorsWriter::open_shard(size_t shard) {
  std::lock_guard lock(mutex_);
  ShardState& s = *states_[shard];
  if (s.closed) AMLQ_FAIL(Internal, "{}: write into the completed shard {}", dir_, shards_[shard].file_name);
  if (!s.created) create_file(s);
  return s.fd;
}

void ShardedSafetensorsWriter::create_file(ShardState& s) {
  const std::string& path = s.output->temp_path();
  s.fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (s.fd < 0) AMLQ_FAIL(Output, "{}: cannot create: {}", path, std::strerror(errno));
  s.created = true;
  pwrite_all(s.fd, reinterpret_cast<const std::byte*>(s.header.data()), s.header.size(), 0, path);
}

void ShardedSafetensorsWriter::close_shard(ShardState& s) {
  int fd;
  {
    std::lock_guard lock(mutex_);
    if (s.closed) return;
    // A shard whose tensors are all empty was never opened by a write.
    if (!s.created) create_file(s);
    fd = s.fd;
    s.fd = -1;
    s.closed = true;
  }
  // Outside the lock: syncing a 5 GB shard must not stall writes into the next one.
  const std::string& path = s.output->temp_path();
  if (options_.sync && ::fdatasync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    AMLQ_FAIL(Output, "{}: fdatasync failed: {}", path, std::strerror(err));
  }
  if (::close(fd) != 0) AMLQ_FAIL(Output, "{}: close failed: {}", path, std::strerror(errno));
}

void ShardedSafetensorsWriter::write(const std::string& name, uint64_t offset, std::span<const std::byte> data) {
  write(index_of(name), offset, data);
}

void ShardedSafetensorsWriter::write(size_t tensor, uint64_t offset, std::span<const std::byte> data) {
  AMLQ_ASSERT(tensor < tensors_.size(), "tensor index {} of {}", tensor, tensors_.size());
  const TensorDecl& t = tensors_[tensor];
  if (offset > t.nbytes() || data.size() > t.nbytes() - offset)
    AMLQ_FAIL(Internal, "{}: tensor '{}': write of {} bytes at offset {} is past its {} bytes", dir_, t.name,
              data.size(), offset, t.nbytes());
  if (data.empty()) return;
  if (finished_) AMLQ_FAIL(Internal, "{}: tensor '{}' written after finish()", dir_, t.name);
  const size_t shard = shard_of_[tensor];
  const int fd = open_shard(shard);
  ShardState& s = *states_[shard];
  pwrite_all(fd, data.data(), data.size(), data_offset_[tensor] + offset, s.output->temp_path());
  *written_[tensor] += data.size();
  if ((s.written += data.size()) == shards_[shard].data_bytes) close_shard(s);
}

void ShardedSafetensorsWriter::write_f32(const std::string& name, int64_t first_element,
                                         std::span<const float> values) {
  write_f32(index_of(name), first_element, values);
}

void ShardedSafetensorsWriter::write_f32(size_t tensor, int64_t first_element, std::span<const float> values) {
  AMLQ_ASSERT(tensor < tensors_.size(), "tensor index {} of {}", tensor, tensors_.size());
  const DType dtype = tensors_[tensor].dtype;
  const size_t width = dtype_size(dtype);
  AMLQ_ASSERT(first_element >= 0, "negative element offset {}", first_element);
  thread_local std::vector<std::byte> buffer;
  for (size_t done = 0; done < values.size(); done += kConvertChunk) {
    const size_t n = std::min(kConvertChunk, values.size() - done);
    buffer.resize(n * width);
    convert_from_f32(dtype, values.data() + done, n, buffer.data());
    write(tensor, (static_cast<uint64_t>(first_element) + done) * width, buffer);
  }
}

void ShardedSafetensorsWriter::finish() {
  if (finished_) AMLQ_FAIL(Internal, "{}: finish() called twice", dir_);
  for (size_t i = 0; i < tensors_.size(); ++i)
    if (written_[i]->load() != tensors_[i].nbytes())
      AMLQ_FAIL(Internal, "{}: tensor '{}' received {} of its {} bytes; the checkpoint is incomplete", dir_,
                tensors_[i].name, written_[i]->load(), tensors_[i].nbytes());
  for (auto& s : states_) close_shard(*s);
  finished_ = true;
  for (auto& s : states_) s->output->commit();
  if (!sharded()) return;

  // The index: json.dumps(index, indent=2, sort_keys=True) as save_pretrained writes it.
  nlohmann::json weight_map = nlohmann::json::object();  // std::map-backed: sorted keys
  for (size_t i = 0; i < tensors_.size(); ++i) weight_map[tensors_[i].name] = shards_[shard_of_[i]].file_name;
  nlohmann::json index = {{"metadata", {{"total_size", total_bytes_}}}, {"weight_map", std::move(weight_map)}};
  AtomicOutput out((fs::path(dir_) / (options_.prefix + ".safetensors.index.json")).string());
  {
    std::ofstream f(out.temp_path(), std::ios::binary | std::ios::trunc);
    if (!f) AMLQ_FAIL(Output, "{}: cannot open for writing", out.temp_path());
    f << index.dump(2) << "\n";
    f.flush();
    if (!f) AMLQ_FAIL(Output, "{}: write failed (disk full?)", out.temp_path());
  }
  out.commit();
}

std::optional<uint64_t> parse_byte_size(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  size_t digits = 0;
  while (digits < text.size() && (std::isdigit(static_cast<unsigned char>(text[digits])) || text[digits] == '.'))
    ++digits;
  if (digits == 0) return std::nullopt;
  std::string number(text.substr(0, digits));
  std::string unit;
  for (char c : text.substr(digits))
    if (!std::isspace(static_cast<unsigned char>(c))) unit.push_back(static_cast<char>(std::toupper(c)));
  static const std::pair<const char*, double> kUnits[] = {
      {"", 1.0},       {"B", 1.0},        {"KB", 1e3},        {"MB", 1e6},        {"GB", 1e9},
      {"TB", 1e12},    {"KIB", 1024.0},   {"MIB", 1048576.0}, {"GIB", 1073741824.0},
      {"TIB", 1099511627776.0},
  };
  double multiplier = -1;
  for (const auto& [name, m] : kUnits)
    if (unit == name) multiplier = m;
  if (multiplier < 0) return std::nullopt;
  double value;
  try {
    size_t used = 0;
    value = std::stod(number, &used);
    if (used != number.size()) return std::nullopt;
  } catch (const std::exception&) {
    return std::nullopt;
  }
  const double bytes = std::floor(value * multiplier);
  if (!(bytes >= 1.0) || bytes > 1.8e19) return std::nullopt;
  return static_cast<uint64_t>(bytes);
}

}  // namespace amlq
