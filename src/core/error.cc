#include "core/error.h"

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

Error::Error(ErrorKind kind, std::string message, const char* src_file, int src_line)
    : std::runtime_error(std::move(message)), kind_(kind), src_file_(src_file), src_line_(src_line) {}

std::string Error::origin() const {
  const char* base = std::strrchr(src_file_, '/');
  return fmt::format("{}:{}", base ? base + 1 : src_file_, src_line_);
}

void throw_error(ErrorKind kind, const char* src_file, int src_line, std::string message) {
  throw Error(kind, std::move(message), src_file, src_line);
}

}  // namespace amlq
