#pragma once
// An export directory that appears complete or not at all: everything is
// written into a temporary sibling directory, which commit() renames into place.
#include <string>

namespace amlq {

class OutputDirectory {
 public:
  // Refuses (Output error naming the path) an existing file, or an existing
  // non-empty directory unless `force`; creates the temporary directory.
  OutputDirectory(std::string final_path, bool force);
  ~OutputDirectory();  // removes the temporary directory unless committed
  OutputDirectory(const OutputDirectory&) = delete;
  OutputDirectory& operator=(const OutputDirectory&) = delete;

  const std::string& temp_path() const { return temp_path_; }
  const std::string& final_path() const { return final_path_; }
  // Renames the temporary directory into place; with `force`, a previous
  // directory there is moved aside first and removed after the rename.
  void commit();

 private:
  std::string final_path_;
  std::string temp_path_;
  bool committed_ = false;
};

}  // namespace amlq
