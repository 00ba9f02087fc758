#include "core/memory.h"

#include <fmt/format.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

namespace amlq {

ProcessMemory read_process_memory() {
  ProcessMemory m;
  std::ifstream in("/proc/self/status");
  std::string line;
  auto field = [&](const char* key, int64_t& out) {
    const size_t n = std::strlen(key);
    if (line.compare(0, n, key) != 0) return;
    long long kib = 0;
    if (std::sscanf(line.c_str() + n, " %lld", &kib) == 1) out = static_cast<int64_t>(kib) * 1024;
  };
  while (std::getline(in, line)) {
    field("VmRSS:", m.rss);
    field("VmHWM:", m.peak_rss);
    field("RssAnon:", m.rss_anon);
    field("RssFile:", m.rss_file);
  }
  return m;
}

bool reset_peak_rss() {
  std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (!f) return false;
  const bool ok = std::fputs("5", f) >= 0;
  return std::fclose(f) == 0 && ok;
}

namespace {

// A number from the first line of a cgroup file; 0 for "max" or when absent.
int64_t cgroup_limit(const char* path) {
  std::ifstream in(path);
  std::string word;
  if (!(in >> word) || word == "max") return 0;
  try {
    const long long v = std::stoll(word);
    // cgroup v1 reports "no limit" as a huge page-aligned number.
    return v > 0 && v < (int64_t{1} << 60) ? static_cast<int64_t>(v) : 0;
  } catch (const std::exception&) {
    return 0;
  }
}

}  // namespace

int64_t host_memory_bytes() {
  int64_t total = 0;
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    long long kib = 0;
    if (std::sscanf(line.c_str(), "MemTotal: %lld", &kib) == 1) {
      total = static_cast<int64_t>(kib) * 1024;
      break;
    }
  }
  for (const char* path : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    const int64_t limit = cgroup_limit(path);
    if (limit > 0 && (total == 0 || limit < total)) total = limit;
  }
  return total;
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} B", bytes) : fmt::format("{:.2f} {}", bytes, units[u]);
}

}  // namespace amlq
