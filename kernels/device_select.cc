#include "kernels/device_select.h"

#include "kernels/cuda_check.h"

namespace amlq::cuda {

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no device" status
    return 0;
  }
  return count;
}

}  // namespace amlq::cuda

namespace amlq {

int select_device_for_local_rank(int node_local_rank) {
  const int device = cuda::device_for_local_rank(node_local_rank, cuda::cuda_device_count());
  if (device >= 0) AMLQ_CHECK_CUDA(cudaSetDevice(device));
  return device;
}

}  // namespace amlq

namespace amlq {
// The registry's hook (src/backend/backend_list.cc.in): GPU by node-local rank.
void bind_cuda_backend_device(int node_local_rank) { select_device_for_local_rank(node_local_rank); }
}  // namespace amlq
