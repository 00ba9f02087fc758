#pragma once
// Owning device allocation with checked, stream-ordered host transfers. Host code
// only (compiles with or without nvcc); kernels receive raw pointers.
#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#include "kernels/cuda_check.h"

namespace amlq::cuda {

template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t count) : count_(count) {
    if (count_ > 0) AMLQ_CHECK_CUDA(cudaMalloc(reinterpret_cast<void**>(&ptr_), count_ * sizeof(T)));
  }
  ~DeviceBuffer() {
    // A destructor cannot throw; a failed free leaves nothing to recover.
    if (ptr_) (void)cudaFree(ptr_);
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), count_(std::exchange(o.count_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      if (ptr_) (void)cudaFree(ptr_);
      ptr_ = std::exchange(o.ptr_, nullptr);
      count_ = std::exchange(o.count_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* data() { return ptr_; }
  const T* data() const { return ptr_; }
  size_t size() const { return count_; }
  size_t bytes() const { return count_ * sizeof(T); }

  // Copies `count` elements (default: all) from host memory, ordered on `stream`.
  void upload(const T* host, cudaStream_t stream, size_t count = SIZE_MAX) {
    if (count == SIZE_MAX) count = count_;
    AMLQ_ASSERT(count <= count_, "upload of {} elements into a buffer of {}", count, count_);
    if (count > 0) AMLQ_CHECK_CUDA(cudaMemcpyAsync(ptr_, host, count * sizeof(T), cudaMemcpyHostToDevice, stream));
  }
  void download(T* host, cudaStream_t stream, size_t count = SIZE_MAX) const {
    if (count == SIZE_MAX) count = count_;
    AMLQ_ASSERT(count <= count_, "download of {} elements from a buffer of {}", count, count_);
    if (count > 0) AMLQ_CHECK_CUDA(cudaMemcpyAsync(host, ptr_, count * sizeof(T), cudaMemcpyDeviceToHost, stream));
  }
  void zero(cudaStream_t stream) {
    if (count_ > 0) AMLQ_CHECK_CUDA(cudaMemsetAsync(ptr_, 0, bytes(), stream));
  }

 private:
  T* ptr_ = nullptr;
  size_t count_ = 0;
};

// Allocates a buffer holding a copy of `count` host elements.
template <typename T>
DeviceBuffer<T> to_device(const T* host, size_t count, cudaStream_t stream) {
  DeviceBuffer<T> buffer(count);
  buffer.upload(host, stream);
  return buffer;
}

}  // namespace amlq::cuda
