// amlq_fuzz_replay: runs committed fuzz inputs through the fuzz targets without
// libFuzzer (any compiler, any build), as a regular test.
//
//   amlq_fuzz_replay --all CORPUS_DIR     every target over CORPUS_DIR/<target>/*
//   amlq_fuzz_replay TARGET FILE|DIR...   one target over the given inputs
//   amlq_fuzz_replay --list               the target names
// A finding aborts with the target and the input named on stderr.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/log.h"
#include "tests/fuzz/fuzz_target.h"

namespace fs = std::filesystem;
using namespace amlq;

namespace {

std::vector<fs::path> inputs_of(const fs::path& p) {
  std::vector<fs::path> files;
  if (fs::is_directory(p)) {
    for (const auto& e : fs::directory_iterator(p))
      if (e.is_regular_file()) files.push_back(e.path());
  } else {
    files.push_back(p);
  }
  std::sort(files.begin(), files.end());
  return files;
}

size_t replay(const fuzz::Target& target, const fs::path& where) {
  size_t n = 0;
  for (const auto& file : inputs_of(where)) {
    std::ifstream in(file, std::ios::binary);
    const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::fprintf(stderr, "%s: %s\n", target.name.c_str(), file.c_str());
    fuzz::run_one(target, {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
    ++n;
  }
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  log::init(0, 1, log::Level::Off);
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--list") {
    for (const auto& t : fuzz::targets()) std::printf("%s\n", t.name.c_str());
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--all") {
    if (args.size() != 2) return 2;
    size_t total = 0;
    for (const auto& t : fuzz::targets()) {
      const fs::path dir = fs::path(args[1]) / t.name;
      if (!fs::is_directory(dir)) {
        std::fprintf(stderr, "amlq_fuzz_replay: target %s has no corpus directory %s\n", t.name.c_str(), dir.c_str());
        return 1;
      }
      const size_t n = replay(t, dir);
      std::printf("%-28s %5zu inputs ok\n", t.name.c_str(), n);
      total += n;
    }
    std::printf("%zu inputs over %zu targets: no finding\n", total, fuzz::targets().size());
    return 0;
  }
  const fuzz::Target* target = fuzz::find_target(args[0]);
  if (!target) {
    std::fprintf(stderr, "amlq_fuzz_replay: no target '%s' (--list)\n", args[0].c_str());
    return 2;
  }
  size_t n = 0;
  for (size_t i = 1; i < args.size(); ++i) n += replay(*target, args[i]);
  std::printf("%s: %zu inputs ok\n", target->name.c_str(), n);
  return 0;
}
