#include "kernels/nccl_comm.h"

#include <span>

#include "kernels/cuda_check.h"

namespace amlq::cuda {

NcclComm::NcclComm(const Communicator& comm, int device) : rank_(comm.rank()), size_(comm.size()) {
  AMLQ_ASSERT(device >= 0, "NCCL needs a device, got {}", device);
  AMLQ_CHECK_CUDA(cudaSetDevice(device));
  ncclUniqueId id{};
  if (rank_ == 0) AMLQ_CHECK_NCCL(ncclGetUniqueId(&id));
  comm.broadcast(std::as_writable_bytes(std::span(&id, 1)), 0);
  AMLQ_CHECK_NCCL(ncclCommInitRank(&comm_, size_, id, rank_));
}

NcclComm::~NcclComm() {
  if (comm_) (void)ncclCommDestroy(comm_);  // cannot report from a destructor
}

void NcclComm::send_hidden(const float* data, size_t tokens, size_t hidden, int peer, cudaStream_t stream) {
  AMLQ_CHECK_NCCL(ncclSend(data, tokens * hidden, ncclFloat32, peer, comm_, stream));
}

void NcclComm::recv_hidden(float* data, size_t tokens, size_t hidden, int peer, cudaStream_t stream) {
  AMLQ_CHECK_NCCL(ncclRecv(data, tokens * hidden, ncclFloat32, peer, comm_, stream));
}

void NcclComm::allreduce_sum(double* data, size_t count, cudaStream_t stream) {
  AMLQ_CHECK_NCCL(ncclAllReduce(data, data, count, ncclFloat64, ncclSum, comm_, stream));
}

}  // namespace amlq::cuda
