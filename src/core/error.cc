#include "core/error.h"

#include <algorithm>
#include <cstring>

namespace amlq {

std::string_view error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::Usage: return "usage error";
    case ErrorKind::Input: return "input error";
    case ErrorKind::Numerical: return "numerical error";
    case ErrorKind::Output: return "output error";
    case ErrorKind::Distributed: return "distributed error";
    case ErrorKind::Device: return "device error";
    case ErrorKind::Internal: return "internal error";
  }
  return "error";
}

int exit_code(ErrorKind kind) { return static_cast<int>(kind); }

namespace {

// Messages quote names and text from input files (a tensor name, a TOML line, a
// .npy header), which may hold line breaks or terminal control bytes, or be huge.
// Every error is one line of bounded length: control characters are escaped and
// the tail beyond kMaxMessage characters is cut.
constexpr size_t kMaxMessage = 2000;

std::string one_line(std::string message) {
  std::string out;
  out.reserve(std::min(message.size(), kMaxMessage) + 32);
  for (size_t i = 0; i < message.size(); ++i) {
    if (out.size() >= kMaxMessage) {
      out += fmt::format(" [... {} more bytes]", message.size() - i);
      break;
    }
    const auto c = static_cast<unsigned char>(message[i]);
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
    else out += static_cast<char>(c);
  }
  return out;
}

}  // namespace

Error::Error(ErrorKind kind, std::string message, const char* src_file, int src_line)
    : std::runtime_error(one_line(std::move(message))), kind_(kind), src_file_(src_file), src_line_(src_line) {}

std::string Error::origin() const {
  const char* base = std::strrchr(src_file_, '/');
  return fmt::format("{}:{}", base ? base + 1 : src_file_, src_line_);
}

void throw_error(ErrorKind kind, const char* src_file, int src_line, std::string message) {
  throw Error(kind, std::move(message), src_file, src_line);
}

}  // namespace amlq
