#pragma once
// Launchers of the element-wise and forward-pass kernels (dense_kernels.cu).
// Matrices are row-major; activations are tokens x features with
// row = sequence * seqlen + position.
#include <cuda_runtime.h>

#include <cstdint>

namespace amlq::cuda {

// out[i] = double(in[i]).
cudaError_t launch_float_to_double(const float* in, double* out, int64_t count, cudaStream_t stream);
// abs_sum[j] += sum_t |x[t, j]| in fp64 (x: tokens x cols).
cudaError_t launch_abs_column_sums(const float* x, int64_t tokens, int cols, double* abs_sum, cudaStream_t stream);
// Row-major n x n: copies the upper triangle onto the lower one.
cudaError_t launch_mirror_upper_to_lower(double* h, int n, cudaStream_t stream);

// y[t, r] += bias[r] (y: tokens x rows).
cudaError_t launch_add_bias(float* y, int tokens, int rows, const float* bias, cudaStream_t stream);
cudaError_t launch_rms_norm(const float* x, const float* weight, float eps, int tokens, int cols, float* y,
                            cudaStream_t stream);
cudaError_t launch_rope(float* x, int tokens, int seqlen, int heads, int head_dim, const float* cos, const float* sin,
                        cudaStream_t stream);
// Causal GQA, one warp per (sequence, head, query); head_dim <= 32 * kAttentionMaxPerLane.
cudaError_t launch_attention(const float* q, const float* k, const float* v, int batch, int seqlen, int heads,
                             int kv_heads, int head_dim, float* out, cudaStream_t stream);
cudaError_t launch_swiglu(const float* gate, const float* up, int64_t count, float* out, cudaStream_t stream);

}  // namespace amlq::cuda
