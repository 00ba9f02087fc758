#pragma once
// Status traits that plug the CUDA runtime, cuBLAS, cuSOLVER and NCCL into the one
// checking macro family of core/check.h: AMLQ_CHECK_CUDA(cudaMemcpy(...)) etc.
// Every failure is ErrorKind::Device (exit code 7).
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include <string>

#include "core/check.h"

#if __has_include(<nccl.h>)
#include <nccl.h>
#define AMLQ_HAVE_NCCL_HEADER 1
#endif

namespace amlq {

template <>
struct StatusTraits<cudaError_t> {
  static bool ok(cudaError_t s) { return s == cudaSuccess; }
  static std::string describe(cudaError_t s) {
    return std::string(cudaGetErrorName(s)) + " (" + cudaGetErrorString(s) + ")";
  }
  static constexpr ErrorKind kind = ErrorKind::Device;
  static constexpr const char* library = "CUDA";
};

template <>
struct StatusTraits<cublasStatus_t> {
  static bool ok(cublasStatus_t s) { return s == CUBLAS_STATUS_SUCCESS; }
  static std::string describe(cublasStatus_t s) { return cublasGetStatusString(s); }
  static constexpr ErrorKind kind = ErrorKind::Device;
  static constexpr const char* library = "cuBLAS";
};

// cuSOLVER has no status-to-string function; the names below are the enum's.
inline const char* cusolver_status_name(cusolverStatus_t s) {
  switch (s) {
    case CUSOLVER_STATUS_SUCCESS: return "CUSOLVER_STATUS_SUCCESS";
    case CUSOLVER_STATUS_NOT_INITIALIZED: return "CUSOLVER_STATUS_NOT_INITIALIZED";
    case CUSOLVER_STATUS_ALLOC_FAILED: return "CUSOLVER_STATUS_ALLOC_FAILED";
    case CUSOLVER_STATUS_INVALID_VALUE: return "CUSOLVER_STATUS_INVALID_VALUE";
    case CUSOLVER_STATUS_ARCH_MISMATCH: return "CUSOLVER_STATUS_ARCH_MISMATCH";
    case CUSOLVER_STATUS_EXECUTION_FAILED: return "CUSOLVER_STATUS_EXECUTION_FAILED";
    case CUSOLVER_STATUS_INTERNAL_ERROR: return "CUSOLVER_STATUS_INTERNAL_ERROR";
    case CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED: return "CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED";
    case CUSOLVER_STATUS_NOT_SUPPORTED: return "CUSOLVER_STATUS_NOT_SUPPORTED";
    case CUSOLVER_STATUS_INVALID_WORKSPACE: return "CUSOLVER_STATUS_INVALID_WORKSPACE";
    default: return "cusolverStatus_t (other)";
  }
}

template <>
struct StatusTraits<cusolverStatus_t> {
  static bool ok(cusolverStatus_t s) { return s == CUSOLVER_STATUS_SUCCESS; }
  static std::string describe(cusolverStatus_t s) {
    return std::string(cusolver_status_name(s)) + " (" + std::to_string(static_cast<int>(s)) + ")";
  }
  static constexpr ErrorKind kind = ErrorKind::Device;
  static constexpr const char* library = "cuSOLVER";
};

#ifdef AMLQ_HAVE_NCCL_HEADER
template <>
struct StatusTraits<ncclResult_t> {
  static bool ok(ncclResult_t s) { return s == ncclSuccess; }
  static std::string describe(ncclResult_t s) { return ncclGetErrorString(s); }
  static constexpr ErrorKind kind = ErrorKind::Device;
  static constexpr const char* library = "NCCL";
};
#endif

}  // namespace amlq
