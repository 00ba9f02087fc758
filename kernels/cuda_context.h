#pragma once
// The per-backend CUDA state: the device, one stream, and the cuBLAS/cuSOLVER
// handles bound to that stream. Every op entry point takes a CudaContext&.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

namespace amlq::cuda {

class CudaContext {
 public:
  // Makes `device` current and creates the stream and handles on it.
  explicit CudaContext(int device);
  ~CudaContext();
  CudaContext(const CudaContext&) = delete;
  CudaContext& operator=(const CudaContext&) = delete;

  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  cublasHandle_t cublas() const { return cublas_; }
  cusolverDnHandle_t cusolver() const { return cusolver_; }
  cusolverDnParams_t cusolver_params() const { return params_; }
  // Blocks until all work queued on the stream finished; surfaces asynchronous errors.
  void synchronize() const;

 private:
  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  cusolverDnHandle_t cusolver_ = nullptr;
  cusolverDnParams_t params_ = nullptr;
};

}  // namespace amlq::cuda
