#pragma once
// Fuzz targets for every parser of outside input (README "Testing", bench/RESULTS.md).
//
// A target is one function of the input bytes, registered with
//
//   AMLQ_FUZZ_TARGET(config_json, ErrorKind::Input) {
//     parse_model_config(fuzz::text(input), "config.json");
//   }
//
// in tests/fuzz/targets/<name>.cc, plus its seeds in tests/fuzz/corpus/<name>/
// and its name in tests/fuzz/CMakeLists.txt. The same sources build two ways:
//  - clang with -DAMLQ_FUZZ=ON: one libFuzzer binary per target, bin/fuzz_<name>,
//    run by scripts/fuzz.sh;
//  - every normal build: bin/amlq_fuzz_replay, which runs the committed corpus
//    (seeds and regression inputs) through the same functions as a ctest, so a
//    fixed bug stays fixed in every build, sanitized or not, with or without clang.
//
// The oracle: a target may reject its input only by throwing amlq::Error of the
// kinds it lists (a file parser: Input). Any other exception (std::out_of_range,
// nlohmann::json::type_error, bad_alloc, an Internal error), a crash, a sanitizer
// report, a failed AMLQ_FUZZ_CHECK or a hang is a bug.
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace amlq::fuzz {

using Input = std::span<const uint8_t>;
using Body = void (*)(Input);

struct Target {
  std::string name;
  Body body = nullptr;
  std::vector<ErrorKind> allowed;  // the error kinds that reject an input cleanly
};

bool register_target(const char* name, Body body, std::initializer_list<ErrorKind> allowed);
const std::vector<Target>& targets();
const Target* find_target(std::string_view name);

// Runs one input through a target; aborts (a finding) on anything but success or
// an allowed amlq::Error.
void run_one(const Target& target, Input input);

// Reports a finding and aborts.
[[noreturn]] void fail(const std::string& what);

inline std::string_view text(Input input) {
  return {reinterpret_cast<const char*>(input.data()), input.size()};
}

// Runs `f`, treating an amlq::Error of kind `kind` as a clean rejection of that
// part only (e.g. one tensor that cannot be read as float).
template <class F>
void tolerate(ErrorKind kind, F&& f) {
  try {
    f();
  } catch (const Error& e) {
    if (e.kind() != kind) throw;
  }
}

// Writes bytes to this process's scratch file with the given suffix (the file
// name's extension selects the parser in some readers) and returns its path.
// The files live in /dev/shm when it exists and are removed at exit.
const std::string& write_scratch(std::string_view suffix, std::span<const std::byte> bytes);
inline const std::string& write_scratch(std::string_view suffix, Input input) {
  return write_scratch(suffix, std::as_bytes(input));
}

// tests/fuzz/data/<name>: fixed inputs a target builds on (e.g. the model file the
// HDF5 edit scripts modify). Throws Internal when missing.
std::vector<std::byte> read_data_file(const std::string& name);
std::string data_path(const std::string& name);

}  // namespace amlq::fuzz

#define AMLQ_FUZZ_CHECK(COND, ...)                                                                    \
  do {                                                                                               \
    if (!(COND)) ::amlq::fuzz::fail(fmt::format("check '{}' failed: {}", #COND, fmt::format(__VA_ARGS__))); \
  } while (0)

#define AMLQ_FUZZ_TARGET(NAME, ...)                                                                  \
  static void amlq_fuzz_##NAME(::amlq::fuzz::Input input);                                          \
  [[maybe_unused]] static const bool amlq_fuzz_registered_##NAME =                                  \
      ::amlq::fuzz::register_target(#NAME, &amlq_fuzz_##NAME, {__VA_ARGS__});                       \
  static void amlq_fuzz_##NAME([[maybe_unused]] ::amlq::fuzz::Input input)
