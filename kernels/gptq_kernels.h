#pragma once
// Launchers of the GPTQ kernels (gptq_kernels.cu). Each queues its kernel on
// `stream` and returns the launch status; the checked entry points that callers
// use are in kernels/gptq_ops.h.
#include <cuda_runtime.h>

#include <cstdint>

namespace amlq::cuda {

// One part's device outputs: fp16 scale bits and integer zeros, rows x num_groups.
struct GptqDevicePart {
  int col_begin = 0;
  int col_end = 0;
  int bits = 4;
  int group = 128;
  int num_groups = 0;
  uint16_t* scales = nullptr;
  uint8_t* zeros = nullptr;
};

inline constexpr int kMaxGptqParts = 8;
struct GptqDeviceParts {
  int count = 0;
  GptqDevicePart parts[kMaxGptqParts];
};

cudaError_t launch_prepare_hessian(const double* h, double* out, int n, const int32_t* perm, double damp_abs,
                                   cudaStream_t stream);
cudaError_t launch_gather_columns(const float* w, float* out, int m, int n, const int32_t* perm, const uint8_t* dead,
                                  cudaStream_t stream);
cudaError_t launch_upper_to_float(const double* l, float* u, int n, cudaStream_t stream);
// Row-major n x n: zeroes the strictly lower triangle.
cudaError_t launch_zero_lower(double* u, int n, cudaStream_t stream);
cudaError_t launch_static_group_params(const float* w, int m, int n, const uint8_t* dead, const GptqDevicePart& part,
                                       bool symmetric, cudaStream_t stream);
// Columns [b0, b0 + bw) of every row; bw <= kGptqMaxBlock. err: m x bw (written when u != nullptr).
cudaError_t launch_gptq_block(float* w, int m, int n, const float* u, int b0, int bw, const GptqDevicePart& part,
                              bool symmetric, bool static_groups, const int32_t* static_perm, uint8_t* codes,
                              float* err, cudaStream_t stream);
// *acc += sum of x[i]^2 (fp64 accumulation).
cudaError_t launch_sum_squares(const float* x, int64_t count, double* acc, cudaStream_t stream);
// *acc += ||W - W_hat||_F^2 with W the original weights (m x n, original order;
// dead columns count as 0) and W_hat decoded from codes (processing order) and
// the parts' parameters.
// e (m x n, row-major, processing order, fp64) = W_p - W_hat_p: W the original
// weights (original order; dead columns count as 0), W_hat from codes and parts.
cudaError_t launch_error_matrix(const float* w, int m, int n, const int32_t* perm, const uint8_t* dead,
                                const uint8_t* codes, const GptqDeviceParts& parts, bool static_groups, double* e,
                                cudaStream_t stream);
// out[r] = sum_c x[r, c]^2 (x: rows x cols, row-major, fp64).
cudaError_t launch_row_sq_norms(const double* x, int64_t rows, int cols, double* out, cudaStream_t stream);
cudaError_t launch_reconstruction_error_sq(const float* w, int m, int n, const int32_t* perm, const uint8_t* dead,
                                           const uint8_t* codes, const GptqDeviceParts& parts, bool static_groups,
                                           double* acc, cudaStream_t stream);

}  // namespace amlq::cuda
