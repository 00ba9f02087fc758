// Placeholder: the CUDA backend (issue 7). Returns nullptr when no device is present,
// so "auto" falls back to the CPU backend.
#include <cuda_runtime.h>

#include <memory>

#include "backend/backend.h"

namespace amlq {

std::unique_ptr<Backend> make_cuda_backend() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) return nullptr;
  return nullptr;  // not implemented yet
}

}  // namespace amlq
