#pragma once
// A NCCL communicator over the ranks of an MPI communicator, for moving device
// data without host staging: hidden states between pipeline stages and fp64
// Hessian all-reduces between data-parallel replicas. Host code (MPI is used
// only to share NCCL's unique id); kernels never include this header.
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstddef>

#include "core/mpi_comm.h"

namespace amlq::cuda {

class NcclComm {
 public:
  // Collective over `comm`: rank 0 creates the id, MPI broadcasts it, every rank
  // joins on `device` (normally select_device_for_local_rank's result).
  NcclComm(const Communicator& comm, int device);
  ~NcclComm();
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  ncclComm_t handle() const { return comm_; }

  // Hidden states (tokens x hidden fp32, device memory) to / from a peer rank.
  void send_hidden(const float* data, size_t tokens, size_t hidden, int peer, cudaStream_t stream);
  void recv_hidden(float* data, size_t tokens, size_t hidden, int peer, cudaStream_t stream);
  // In-place element-wise sum of fp64 device data over all ranks.
  void allreduce_sum(double* data, size_t count, cudaStream_t stream);

 private:
  ncclComm_t comm_ = nullptr;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace amlq::cuda
