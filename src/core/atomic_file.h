#pragma once
// Outputs are written under a temporary name and renamed into place only when
// complete, so an interrupted run never leaves a file that looks finished.
#include <string>

namespace amlq {

class AtomicOutput {
 public:
  explicit AtomicOutput(std::string final_path);
  ~AtomicOutput();  // removes the temporary file unless commit() succeeded
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;

  const std::string& temp_path() const { return temp_path_; }
  const std::string& final_path() const { return final_path_; }
  void commit();  // rename temp -> final (atomic on one filesystem)

 private:
  std::string final_path_;
  std::string temp_path_;
  bool committed_ = false;
};

// Deletes FINAL_PATH.tmp.* left by a process that was killed before its
// AtomicOutput could clean up (SIGKILL, the OOM killer, a preempted job);
// returns how many. Call only when nothing of the current run writes that path.
int remove_stale_temporaries(const std::string& final_path);
// The same for every AtomicOutput temporary (NAME.tmp.PID) anywhere under dir.
int remove_temporaries_under(const std::string& dir);

}  // namespace amlq
