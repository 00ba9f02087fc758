#include "kernels/forward_ops.h"

#include "kernels/cuda_check.h"
#include "kernels/dense_kernels.h"
#include "kernels/launch_geometry.h"

namespace amlq::cuda {

void linear(CudaContext& ctx, const float* x, int tokens, int n, const float* w, int m, const float* bias, float* y) {
  if (tokens == 0 || m == 0) return;
  const float one = 1.0f, zero = 0.0f;
  // Column-major view: y^T (m x tokens) = w (m x n) x^T, with w^T stored as an n x m column-major matrix.
  AMLQ_CHECK_CUBLAS(cublasSgemm(ctx.cublas(), CUBLAS_OP_T, CUBLAS_OP_N, m, tokens, n, &one, w, n, x, n, &zero, y, m));
  if (bias) AMLQ_CHECK_CUDA(launch_add_bias(y, tokens, m, bias, ctx.stream()));
}

void rms_norm(CudaContext& ctx, const float* x, const float* weight, float eps, int tokens, int cols, float* y) {
  AMLQ_CHECK_CUDA(launch_rms_norm(x, weight, eps, tokens, cols, y, ctx.stream()));
}

void rope(CudaContext& ctx, float* x, int tokens, int seqlen, int heads, int head_dim, const float* cos,
          const float* sin) {
  AMLQ_CHECK_CUDA(launch_rope(x, tokens, seqlen, heads, head_dim, cos, sin, ctx.stream()));
}

void attention(CudaContext& ctx, const float* q, const float* k, const float* v, int batch, int seqlen, int heads,
               int kv_heads, int head_dim, float* out) {
  AMLQ_REQUIRE(head_dim <= kWarpSize * kAttentionMaxPerLane, "CUDA attention supports head_dim <= {}, got {}",
               kWarpSize * kAttentionMaxPerLane, head_dim);
  AMLQ_REQUIRE(kv_heads > 0 && heads % kv_heads == 0, "attention: {} heads are not a multiple of {} kv heads", heads,
               kv_heads);
  AMLQ_CHECK_CUDA(launch_attention(q, k, v, batch, seqlen, heads, kv_heads, head_dim, out, ctx.stream()));
}

void swiglu(CudaContext& ctx, const float* gate, const float* up, int64_t count, float* out) {
  AMLQ_CHECK_CUDA(launch_swiglu(gate, up, count, out, ctx.stream()));
}

}  // namespace amlq::cuda
