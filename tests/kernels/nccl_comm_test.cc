// The NCCL communicator on a single rank (the multi-rank exchange needs
// several GPUs and mpirun; see the final report). Skips without a device.
#include <gtest/gtest.h>

#include <vector>

#include "gpu_test_util.h"
#include "kernels/device_buffer.h"
#include "kernels/nccl_comm.h"

namespace amlq {
namespace {

TEST(NcclComm, SingleRankAllReduceAndSelfExchange) {
  AMLQ_SKIP_WITHOUT_CUDA_DEVICE();
  const Communicator world = Communicator::world();
  if (world.size() != 1) GTEST_SKIP() << "single-rank test run under mpirun";
  const int device = select_device_for_local_rank(0);
  cuda::NcclComm comm(world, device);
  EXPECT_EQ(comm.size(), 1);
  cudaStream_t stream = nullptr;
  AMLQ_CHECK_CUDA(cudaStreamCreate(&stream));
  std::vector<double> values{1.5, -2.0, 3.25};
  auto d = cuda::to_device(values.data(), values.size(), stream);
  comm.allreduce_sum(d.data(), values.size(), stream);
  std::vector<double> back(values.size());
  d.download(back.data(), stream);

  std::vector<float> hidden{1, 2, 3, 4, 5, 6};
  auto src = cuda::to_device(hidden.data(), hidden.size(), stream);
  cuda::DeviceBuffer<float> dst(hidden.size());
  AMLQ_CHECK_NCCL(ncclGroupStart());
  comm.send_hidden(src.data(), 2, 3, 0, stream);
  comm.recv_hidden(dst.data(), 2, 3, 0, stream);
  AMLQ_CHECK_NCCL(ncclGroupEnd());
  std::vector<float> received(hidden.size());
  dst.download(received.data(), stream);
  AMLQ_CHECK_CUDA(cudaStreamSynchronize(stream));
  AMLQ_CHECK_CUDA(cudaStreamDestroy(stream));
  EXPECT_EQ(back, values);  // a sum over one rank is the identity
  EXPECT_EQ(received, hidden);
}

}  // namespace
}  // namespace amlq
