#pragma once
// Helpers of the GPU benchmarks: fast host random fill and CUDA-event timing.
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <functional>

#include "kernels/cuda_check.h"

namespace amlq::bench {

// xorshift64*: cheap enough to fill gigabytes of benchmark inputs.
class FastRandom {
 public:
  explicit FastRandom(uint64_t seed) : state_(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545F4914F6CDD1Dull;
  }
  float uniform() { return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f); }  // [0, 1)
  float symmetric() { return 2.0f * uniform() - 1.0f; }                                 // [-1, 1)

 private:
  uint64_t state_;
};

// Mean seconds per call of `body` over `iters` calls on `stream`, after `warmup`.
inline double time_on_stream(cudaStream_t stream, int warmup, int iters, const std::function<void()>& body) {
  for (int i = 0; i < warmup; ++i) body();
  cudaEvent_t start, stop;
  AMLQ_CHECK_CUDA(cudaEventCreate(&start));
  AMLQ_CHECK_CUDA(cudaEventCreate(&stop));
  AMLQ_CHECK_CUDA(cudaEventRecord(start, stream));
  for (int i = 0; i < iters; ++i) body();
  AMLQ_CHECK_CUDA(cudaEventRecord(stop, stream));
  AMLQ_CHECK_CUDA(cudaEventSynchronize(stop));
  float ms = 0;
  AMLQ_CHECK_CUDA(cudaEventElapsedTime(&ms, start, stop));
  AMLQ_CHECK_CUDA(cudaEventDestroy(start));
  AMLQ_CHECK_CUDA(cudaEventDestroy(stop));
  return ms * 1e-3 / iters;
}

}  // namespace amlq::bench
