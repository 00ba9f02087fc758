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
