#pragma once
// Checked entry points for the dense forward-pass pieces on device buffers.
// linear is cuBLAS SGEMM in plain fp32 (the context disables TF32).
#include <cstdint>

#include "kernels/cuda_context.h"

namespace amlq::cuda {

// y (tokens x m) = x (tokens x n) w^T (w: m x n) (+ bias[m] when non-null).
void linear(CudaContext& ctx, const float* x, int tokens, int n, const float* w, int m, const float* bias, float* y);
void rms_norm(CudaContext& ctx, const float* x, const float* weight, float eps, int tokens, int cols, float* y);
void rope(CudaContext& ctx, float* x, int tokens, int seqlen, int heads, int head_dim, const float* cos,
          const float* sin);
void attention(CudaContext& ctx, const float* q, const float* k, const float* v, int batch, int seqlen, int heads,
               int kv_heads, int head_dim, float* out);
void swiglu(CudaContext& ctx, const float* gate, const float* up, int64_t count, float* out);

}  // namespace amlq::cuda
