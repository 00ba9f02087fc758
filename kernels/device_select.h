#pragma once
// Mapping MPI ranks to GPUs: a rank uses device (node-local rank % devices), so
// ranks sharing a node spread over its GPUs and oversubscribe them evenly.
namespace amlq::cuda {

// The pure rule: -1 when there is no device (the caller runs on the CPU backend).
constexpr int device_for_local_rank(int node_local_rank, int device_count) {
  if (device_count <= 0 || node_local_rank < 0) return -1;
  return node_local_rank % device_count;
}

// Devices visible to this process; 0 when the driver or devices are missing
// (never throws: "no GPU" is a normal configuration).
int cuda_device_count();

}  // namespace amlq::cuda

namespace amlq {

// Makes device (node_local_rank % count) current and returns it, or returns -1
// without touching anything when no device is visible. Throws Device if
// cudaSetDevice fails on a device that exists.
int select_device_for_local_rank(int node_local_rank);

}  // namespace amlq
