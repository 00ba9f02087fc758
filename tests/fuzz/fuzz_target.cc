#include "tests/fuzz/fuzz_target.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

namespace amlq::fuzz {
namespace {

std::vector<Target>& registry() {
  static std::vector<Target> all;
  return all;
}

std::string scratch_dir() {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory("/dev/shm", ec)) return "/dev/shm";
  const char* tmp = std::getenv("TMPDIR");
  return tmp && *tmp ? tmp : "/tmp";
}

struct ScratchFiles {
  std::map<std::string, std::string, std::less<>> by_suffix;
  ~ScratchFiles() {
    for (const auto& [suffix, path] : by_suffix) std::remove(path.c_str());
  }
};

ScratchFiles& scratch() {
  static ScratchFiles files;
  return files;
}

}  // namespace

bool register_target(const char* name, Body body, std::initializer_list<ErrorKind> allowed) {
  registry().push_back({name, body, allowed});
  return true;
}

const std::vector<Target>& targets() { return registry(); }

const Target* find_target(std::string_view name) {
  for (const auto& t : registry())
    if (t.name == name) return &t;
  return nullptr;
}

void fail(const std::string& what) {
  std::fprintf(stderr, "\n==amlq-fuzz== FINDING: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

void run_one(const Target& target, Input input) {
  try {
    target.body(input);
  } catch (const Error& e) {
    if (std::find(target.allowed.begin(), target.allowed.end(), e.kind()) == target.allowed.end())
      fail(fmt::format("target {}: amlq::Error of kind {} (not an allowed rejection): {}", target.name,
                       error_kind_name(e.kind()), e.what()));
    if (std::string_view(e.what()).find_first_of("\r\n") != std::string_view::npos)
      fail(fmt::format("target {}: error message spans several lines: {}", target.name, e.what()));
  } catch (const std::exception& e) {
    fail(fmt::format("target {}: escaped std::exception (the CLI would report an internal error): {}", target.name,
                     e.what()));
  } catch (...) {
    fail(fmt::format("target {}: escaped a non-standard exception", target.name));
  }
}

const std::string& write_scratch(std::string_view suffix, std::span<const std::byte> bytes) {
  auto& files = scratch();
  auto it = files.by_suffix.find(suffix);
  if (it == files.by_suffix.end()) {
    const std::string path = fmt::format("{}/amlq-fuzz-{}{}", scratch_dir(), ::getpid(), suffix);
    it = files.by_suffix.emplace(std::string(suffix), path).first;
  }
  std::ofstream out(it->second, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) fail(fmt::format("cannot write the scratch file {}", it->second));
  return it->second;
}

std::string data_path(const std::string& name) { return std::string(AMLQ_FUZZ_DATA_DIR) + "/" + name; }

std::vector<std::byte> read_data_file(const std::string& name) {
  const std::string path = data_path(name);
  std::ifstream in(path, std::ios::binary);
  if (!in) AMLQ_FAIL(Internal, "{}: fuzz data file missing (tests/fuzz/make_seeds.sh makes it)", path);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(bytes.size());
  std::transform(bytes.begin(), bytes.end(), out.begin(), [](char c) { return static_cast<std::byte>(c); });
  return out;
}

}  // namespace amlq::fuzz
