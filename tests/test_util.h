#pragma once
// Helpers shared by tests: paths to ../shared, temporary directories, running the CLI.
#include <filesystem>
#include <string>

namespace amlq::test {

// ../shared/<relative>; the test is skipped (GTEST_SKIP in the caller) when missing.
std::string shared_path(const std::string& relative);
bool shared_available();

// A fresh directory under the system temp dir, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

struct CommandResult {
  int exit_code = 0;
  std::string output;  // stdout and stderr together
};
// Runs `amlq <args>` (the built binary) through the shell.
CommandResult run_amlq(const std::string& args);
CommandResult run_shell(const std::string& command);

}  // namespace amlq::test
