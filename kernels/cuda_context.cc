#include "kernels/cuda_context.h"

#include "kernels/cuda_check.h"

namespace amlq::cuda {

CudaContext::CudaContext(int device) : device_(device) {
  AMLQ_CHECK_CUDA(cudaSetDevice(device_));
  AMLQ_CHECK_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  AMLQ_CHECK_CUBLAS(cublasCreate(&cublas_));
  AMLQ_CHECK_CUBLAS(cublasSetStream(cublas_, stream_));
  // Plain fp32 SGEMM (no TF32): the parity tests hold the dense ops to fp32 tolerances.
  AMLQ_CHECK_CUBLAS(cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH));
  AMLQ_CHECK_CUSOLVER(cusolverDnCreate(&cusolver_));
  AMLQ_CHECK_CUSOLVER(cusolverDnSetStream(cusolver_, stream_));
  AMLQ_CHECK_CUSOLVER(cusolverDnCreateParams(&params_));
}

CudaContext::~CudaContext() {
  // Teardown failures cannot be reported from a destructor; the process keeps going.
  if (params_) (void)cusolverDnDestroyParams(params_);
  if (cusolver_) (void)cusolverDnDestroy(cusolver_);
  if (cublas_) (void)cublasDestroy(cublas_);
  if (stream_) (void)cudaStreamDestroy(stream_);
}

void CudaContext::synchronize() const { AMLQ_CHECK_CUDA(cudaStreamSynchronize(stream_)); }

}  // namespace amlq::cuda
