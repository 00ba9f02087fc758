#pragma once
// Errors inside amlq are exceptions carrying a failure class; the CLI turns each
// class into one exit code (README, "Exit codes").
#include <stdexcept>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace amlq {

enum class ErrorKind : int {
  Usage = 2,        // bad command line or option combination
  Input = 3,        // a user-supplied file is missing, malformed or inconsistent
  Numerical = 4,    // a factorization failed beyond recovery, NaN, etc.
  Output = 5,       // writing a result failed
  Distributed = 6,  // MPI / another rank failed
  Device = 7,       // CUDA / cuBLAS / cuSOLVER / NCCL failure
  Internal = 1,     // a bug: an invariant did not hold
};

std::string_view error_kind_name(ErrorKind kind);
int exit_code(ErrorKind kind);

// The message is one line of at most ~2000 characters whatever it quotes: line
// breaks and other control characters are escaped (\n, \x1b), the rest is cut.
class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, std::string message, const char* src_file = "", int src_line = 0);
  ErrorKind kind() const { return kind_; }
  // Where in amlq's source the error was raised, for --verbose logs.
  std::string origin() const;

 private:
  ErrorKind kind_;
  const char* src_file_;
  int src_line_;
};

[[noreturn]] void throw_error(ErrorKind kind, const char* src_file, int src_line, std::string message);

}  // namespace amlq

// AMLQ_FAIL(Input, "{}: tensor '{}' has {} bytes, expected {}", path, name, a, b);
#define AMLQ_FAIL(KIND, ...) \
  ::amlq::throw_error(::amlq::ErrorKind::KIND, __FILE__, __LINE__, ::fmt::format(__VA_ARGS__))

// Checks an invariant that input validation should already guarantee.
#define AMLQ_ASSERT(COND, ...)                                  \
  do {                                                          \
    if (!(COND)) [[unlikely]]                                   \
      AMLQ_FAIL(Internal, "assertion '{}' failed: {}", #COND,   \
                ::fmt::format(__VA_ARGS__));                    \
  } while (0)

// Checks a user-controllable condition and reports it as bad input.
#define AMLQ_REQUIRE(COND, ...)                  \
  do {                                           \
    if (!(COND)) [[unlikely]]                    \
      AMLQ_FAIL(Input, __VA_ARGS__);             \
  } while (0)
