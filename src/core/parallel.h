#pragma once
// Runs fn(0..n-1) on up to `threads` std::threads. Work items must be
// independent; results go to per-index slots so the outcome does not depend on
// the thread count. The first exception (by index) is rethrown after all finish.
#include <functional>

namespace amlq {

void parallel_for(int n, int threads, const std::function<void(int)>& fn);
// threads <= 0: the machine's hardware concurrency.
int resolve_threads(int threads);

}  // namespace amlq
