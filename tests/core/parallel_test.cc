// The shared thread pool: every item runs once, exceptions come back, nested
// calls do not deadlock, and the process memory probe reads /proc.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "core/memory.h"
#include "core/parallel.h"

namespace amlq {
namespace {

TEST(ParallelFor, RunsEveryItemExactlyOnce) {
  for (int threads : {1, 2, 3, 8}) {
    std::vector<std::atomic<int>> hits(257);
    parallel_for(257, threads, [&](int i) { hits[static_cast<size_t>(i)]++; });
    for (const auto& h : hits) EXPECT_EQ(h.load(), 1) << threads << " threads";
  }
}

TEST(ParallelFor, RethrowsTheFirstFailureByIndex) {
  try {
    parallel_for(50, 3, [](int i) {
      if (i == 7 || i == 31) throw std::runtime_error("item " + std::to_string(i));
    });
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "item 7");
  }
  // The pool is usable afterwards.
  std::atomic<int> sum{0};
  parallel_for(10, 3, [&](int i) { sum += i; });
  EXPECT_EQ(sum.load(), 45);
}

TEST(ParallelFor, NestedCallsRunSeriallyInsideAWorker) {
  std::atomic<int> inner{0};
  std::atomic<int> nested_in_worker{0};
  parallel_for(6, 3, [&](int) {
    EXPECT_TRUE(inside_parallel_worker());
    parallel_for(5, 3, [&](int) {
      inner++;
      if (inside_parallel_worker()) nested_in_worker++;
    });
  });
  EXPECT_EQ(inner.load(), 30);
  EXPECT_EQ(nested_in_worker.load(), 30);
  EXPECT_FALSE(inside_parallel_worker());
}

TEST(ProcessMemory, ReadsResidentAndPeakMemory) {
  const ProcessMemory before = read_process_memory();
  ASSERT_GT(before.rss, 0);
  std::vector<char> block(64 << 20, 1);  // 64 MiB touched
  const ProcessMemory after = read_process_memory();
  EXPECT_GE(after.peak_rss, before.rss + (48 << 20)) << "the high-water mark must see the block";
  EXPECT_GE(after.peak_rss, after.rss);
  EXPECT_EQ(format_bytes(1536.0 * 1024 * 1024), "1.50 GiB");
}

}  // namespace
}  // namespace amlq
