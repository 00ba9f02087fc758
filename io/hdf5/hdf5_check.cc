#include "io/hdf5/hdf5_check.h"

#include <vector>

namespace amlq {

namespace {

struct Frame {
  std::string function;
  std::string description;
};

herr_t collect_frame(unsigned, const H5E_error2_t* error, void* data) {
  auto* frames = static_cast<std::vector<Frame>*>(data);
  frames->push_back({error->func_name ? error->func_name : "", error->desc ? error->desc : ""});
  return 0;
}

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

}  // namespace

// The outermost frame says what was asked, the innermost why it failed:
// "H5Fopen(): unable to open file (H5FD_sec2_open(): unable to open file: name = 'x', errno = 2 ...)".
std::string StatusTraits<Hdf5Status>::describe(Hdf5Status status) {
  std::vector<Frame> frames;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, collect_frame, &frames);  // upward: innermost first
  if (frames.empty()) return fmt::format("returned {}", status.code);
  const Frame& inner = frames.front();
  const Frame& outer = frames.back();
  std::string line = fmt::format("{}(): {}", outer.function, outer.description);
  if (frames.size() > 1) line += fmt::format(" ({}(): {})", inner.function, inner.description);
  return one_line(std::move(line));
}

namespace h5 {

void quiet_hdf5_errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

}  // namespace h5
}  // namespace amlq
