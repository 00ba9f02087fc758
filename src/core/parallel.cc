#include "core/parallel.h"

#include <atomic>
#include <exception>
#include <thread>
#include <vector>

namespace amlq {

int resolve_threads(int threads) {
  if (threads > 0) return threads;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

void parallel_for(int n, int threads, const std::function<void(int)>& fn) {
  threads = std::min(resolve_threads(threads), n);
  if (threads <= 1) {
    for (int i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<int> next{0};
  std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
  std::atomic<bool> failed{false};
  auto worker = [&] {
    for (int i = next++; i < n; i = next++) {
      if (failed) continue;  // drain quickly after a failure
      try {
        fn(i);
      } catch (...) {
        errors[static_cast<size_t>(i)] = std::current_exception();
        failed = true;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace amlq
