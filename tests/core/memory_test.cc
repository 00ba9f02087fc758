#include "core/memory.h"

#include <gtest/gtest.h>

#include <fstream>
#include <vector>

namespace amlq {
namespace {

TEST(ProcessMemory, PeakCoversWhatWasTouched) {
  const ProcessMemory before = read_process_memory();
  ASSERT_GT(before.rss, 0) << "/proc/self/status not readable";
  std::vector<char> block(size_t{64} << 20, 1);  // 64 MiB, every page touched
  const ProcessMemory after = read_process_memory();
  EXPECT_GE(after.peak_rss, before.rss + (int64_t{60} << 20)) << static_cast<int>(block[12345]);
  EXPECT_GE(after.peak_rss, after.rss);
}

TEST(HostMemory, IsPositiveAndAtMostMemTotal) {
  const int64_t host = host_memory_bytes();
  ASSERT_GT(host, 0);
  std::ifstream in("/proc/meminfo");
  std::string key;
  long long kib = 0;
  in >> key >> kib;
  ASSERT_EQ(key, "MemTotal:");
  EXPECT_LE(host, static_cast<int64_t>(kib) * 1024);
}

TEST(FormatBytes, PicksTheUnit) {
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(1.5 * 1024 * 1024 * 1024), "1.50 GiB");
}

}  // namespace
}  // namespace amlq
