#pragma once
// Threads. Two kinds of parallel work share one persistent pool:
//  - coarse: the measure and pack stages run whole linears on `--threads` workers;
//  - fine: the CPU backend splits large GEMMs, Hessian updates and attention into
//    FIXED tiles (sizes that never depend on the thread count) and runs the tiles
//    on compute_threads() workers, so results are bit-identical for any count.
// A parallel_for called from inside a worker runs serially on that worker: a
// coarse task's backend calls never oversubscribe the cores.
#include <functional>

namespace amlq {

// Runs fn(0..n-1) on up to `threads` threads (the caller is one of them). Work
// items must be independent and write to per-index slots. The first exception
// (by index) is rethrown after every started item has finished.
void parallel_for(int n, int threads, const std::function<void(int)>& fn);
// threads <= 0: the machine's hardware concurrency.
int resolve_threads(int threads);

// Threads for the backend's fine-grained tiles (default: hardware concurrency).
void set_compute_threads(int threads);
int compute_threads();
// True on a thread that is running a parallel_for work item.
bool inside_parallel_worker();

}  // namespace amlq
