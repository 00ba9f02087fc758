#include "core/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "core/error.h"

namespace amlq {

AtomicOutput::AtomicOutput(std::string final_path)
    : final_path_(std::move(final_path)),
      temp_path_(final_path_ + ".tmp." + std::to_string(::getpid())) {
  const auto parent = std::filesystem::path(final_path_).parent_path();
  if (!parent.empty() && !std::filesystem::is_directory(parent))
    AMLQ_FAIL(Output, "{}: directory {} does not exist", final_path_, parent.string());
}

AtomicOutput::~AtomicOutput() {
  if (!committed_) std::remove(temp_path_.c_str());
}

void AtomicOutput::commit() {
  if (std::rename(temp_path_.c_str(), final_path_.c_str()) != 0)
    AMLQ_FAIL(Output, "{}: cannot rename {} into place: {}", final_path_, temp_path_, std::strerror(errno));
  committed_ = true;
}

namespace {

int remove_temporaries(const std::vector<std::filesystem::path>& paths) {
  int removed = 0;
  for (const auto& p : paths) {
    std::error_code ec;
    if (std::filesystem::remove(p, ec)) ++removed;
    else if (ec) AMLQ_FAIL(Output, "{}: cannot remove a temporary left by an interrupted run: {}", p.string(), ec.message());
  }
  return removed;
}

}  // namespace

int remove_stale_temporaries(const std::string& final_path) {
  namespace fs = std::filesystem;
  const fs::path final(final_path);
  const fs::path dir = final.has_parent_path() ? final.parent_path() : fs::path(".");
  const std::string prefix = final.filename().string() + ".tmp.";
  std::error_code ec;
  std::vector<fs::path> stale;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
    if (it->path().filename().string().starts_with(prefix)) stale.push_back(it->path());
  return remove_temporaries(stale);
}

int remove_temporaries_under(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<fs::path> stale;
  if (!fs::exists(dir, ec)) return 0;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    std::error_code file_ec;
    if (it->is_regular_file(file_ec) && it->path().filename().string().find(".tmp.") != std::string::npos)
      stale.push_back(it->path());
  }
  return remove_temporaries(stale);
}

}  // namespace amlq
