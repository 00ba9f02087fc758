#include "core/parallel.h"

#include <atomic>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace amlq {
namespace {

thread_local bool t_in_worker = false;
std::atomic<int> g_compute_threads{0};

// One parallel_for call: items are claimed with an atomic counter by the caller
// and by the pool workers that joined.
struct Job {
  int n = 0;
  const std::function<void(int)>* fn = nullptr;
  std::atomic<int> next{0};
  std::atomic<int> finished{0};  // items done (or skipped after a failure)
  std::atomic<bool> failed{false};
  std::vector<std::exception_ptr> errors;

  void run_items() {
    const bool outer = t_in_worker;
    t_in_worker = true;
    for (int i = next++; i < n; i = next++) {
      if (!failed) {
        try {
          (*fn)(i);
        } catch (...) {
          errors[static_cast<size_t>(i)] = std::current_exception();
          failed = true;
        }
      }
      finished.fetch_add(1, std::memory_order_acq_rel);
    }
    t_in_worker = outer;
  }
};

// Workers sleep on a condition variable and join whichever job is posted;
// threads are created on first need and live for the process.
class Pool {
 public:
  static Pool& instance() {
    static Pool* pool = new Pool();  // never destroyed: workers may outlive static destruction order
    return *pool;
  }

  void run(const std::shared_ptr<Job>& job, int helpers) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      while (static_cast<int>(threads_.size()) < helpers) threads_.emplace_back([this] { work(); });
      job_ = job;
      wanted_ = helpers;
      ++generation_;
    }
    wake_.notify_all();
    job->run_items();
    // Wait for items other threads are still running.
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return job->finished.load(std::memory_order_acquire) >= job->n; });
    if (job_ == job) job_.reset();
  }

 private:
  void work() {
    uint64_t seen = 0;
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_ != seen && job_ && wanted_ > 0; });
        seen = generation_;
        --wanted_;
        job = job_;
      }
      job->run_items();
      {
        std::lock_guard<std::mutex> lock(mutex_);
      }
      done_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> threads_;
  std::shared_ptr<Job> job_;
  int wanted_ = 0;
  uint64_t generation_ = 0;
};

// Top-level parallel_for calls are serialized: the pool runs one job at a time.
std::mutex g_top_level;

}  // namespace

int resolve_threads(int threads) {
  if (threads > 0) return threads;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

void set_compute_threads(int threads) { g_compute_threads = threads; }
int compute_threads() { return resolve_threads(g_compute_threads.load()); }
bool inside_parallel_worker() { return t_in_worker; }

void parallel_for(int n, int threads, const std::function<void(int)>& fn) {
  if (n <= 0) return;
  threads = std::min(resolve_threads(threads), n);
  if (threads <= 1 || t_in_worker) {
    // Serial, without marking the thread: a single coarse item may still use
    // the compute threads for its own tiles.
    for (int i = 0; i < n; ++i) fn(i);
    return;
  }
  std::lock_guard<std::mutex> top(g_top_level);
  auto job = std::make_shared<Job>();
  job->n = n;
  job->fn = &fn;
  job->errors.resize(static_cast<size_t>(n));
  Pool::instance().run(job, threads - 1);
  for (auto& e : job->errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace amlq
