#include "export/output_directory.h"

#include <unistd.h>

#include <filesystem>

#include "core/error.h"

namespace amlq {

namespace fs = std::filesystem;

OutputDirectory::OutputDirectory(std::string final_path, bool force) : final_path_(std::move(final_path)) {
  while (final_path_.size() > 1 && final_path_.back() == '/') final_path_.pop_back();
  AMLQ_REQUIRE(!final_path_.empty(), "the output directory name is empty");
  std::error_code ec;
  if (fs::exists(final_path_, ec)) {
    if (!fs::is_directory(final_path_, ec)) AMLQ_FAIL(Output, "{}: exists and is not a directory", final_path_);
    if (!fs::is_empty(final_path_, ec) && !force)
      AMLQ_FAIL(Output, "{}: directory exists and is not empty (pass --force to replace it)", final_path_);
  }
  const fs::path parent = fs::absolute(final_path_, ec).parent_path();
  if (!fs::is_directory(parent, ec))
    AMLQ_FAIL(Output, "{}: parent directory {} does not exist", final_path_, parent.string());
  temp_path_ = final_path_ + ".tmp." + std::to_string(::getpid());
  fs::remove_all(temp_path_, ec);
  if (!fs::create_directory(temp_path_, ec) || ec)
    AMLQ_FAIL(Output, "{}: cannot create {}: {}", final_path_, temp_path_, ec.message());
}

OutputDirectory::~OutputDirectory() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(temp_path_, ec);
}

void OutputDirectory::commit() {
  std::error_code ec;
  std::string aside;
  if (fs::exists(final_path_, ec)) {
    aside = final_path_ + ".old." + std::to_string(::getpid());
    fs::remove_all(aside, ec);
    fs::rename(final_path_, aside, ec);
    if (ec) AMLQ_FAIL(Output, "{}: cannot move the previous directory aside: {}", final_path_, ec.message());
  }
  fs::rename(temp_path_, final_path_, ec);
  if (ec) {
    std::error_code restore;
    if (!aside.empty()) fs::rename(aside, final_path_, restore);
    AMLQ_FAIL(Output, "{}: cannot rename {} into place: {}", final_path_, temp_path_, ec.message());
  }
  committed_ = true;
  if (!aside.empty()) fs::remove_all(aside, ec);
}

}  // namespace amlq
