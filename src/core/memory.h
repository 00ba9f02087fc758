#pragma once
// What this process holds, from /proc/self/status (Linux). Resident memory
// includes the pages of mmapped checkpoint files that were touched (RssFile).
#include <cstdint>
#include <string>

namespace amlq {

struct ProcessMemory {
  int64_t rss = 0;       // VmRSS: resident now
  int64_t peak_rss = 0;  // VmHWM: the high-water mark since start (or the last reset)
  int64_t rss_anon = 0;  // RssAnon: heap, stacks
  int64_t rss_file = 0;  // RssFile: mapped files (checkpoint shards)
};

// Zeros when /proc is not available.
ProcessMemory read_process_memory();
// Resets the high-water mark to the current RSS (/proc/self/clear_refs); false
// when the kernel does not allow it (peak_rss then keeps counting from start).
bool reset_peak_rss();

// Memory this process may use on its host: MemTotal from /proc/meminfo, lowered
// to the cgroup limit (cgroup v2 memory.max, v1 memory.limit_in_bytes) when one
// is set, as under Slurm's task/cgroup plugin. 0 when unknown.
int64_t host_memory_bytes();

// "1.23 GiB"
std::string format_bytes(double bytes);

}  // namespace amlq
