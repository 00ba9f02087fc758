#include "core/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

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

}  // namespace amlq
