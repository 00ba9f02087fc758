// Element-wise helpers for the Hessian and the forward-pass pieces. Simple,
// exact-order fp32 kernels: they are checked against the CPU oracle, not tuned.
#include <cfloat>

#include "kernels/dense_kernels.h"
#include "kernels/launch_geometry.h"

namespace amlq::cuda {
namespace {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kNormThreads = 256;
constexpr int kAttentionWarps = 4;

#define AMLQ_GRID_STRIDE(idx, total)                                                        \
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < (total); \
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x)

__global__ void float_to_double_kernel(const float* __restrict__ in, double* __restrict__ out, int64_t count) {
  AMLQ_GRID_STRIDE(i, count) out[i] = static_cast<double>(in[i]);
}

// Consecutive threads take consecutive columns, so each token row is read coalesced.
__global__ void abs_column_sums_kernel(const float* __restrict__ x, int64_t tokens, int cols,
                                       double* __restrict__ abs_sum) {
  AMLQ_GRID_STRIDE(j, cols) {
    double sum = 0.0;
    for (int64_t t = 0; t < tokens; ++t) sum += fabs(static_cast<double>(x[t * cols + j]));
    abs_sum[j] += sum;
  }
}

__global__ void mirror_upper_to_lower_kernel(double* __restrict__ h, int n) {
  const int64_t total = static_cast<int64_t>(n) * n;
  AMLQ_GRID_STRIDE(idx, total) {
    const int64_t i = idx / n;
    const int64_t j = idx % n;
    if (i > j) h[idx] = h[j * n + i];
  }
}

__global__ void add_bias_kernel(float* __restrict__ y, int tokens, int rows, const float* __restrict__ bias) {
  const int64_t total = static_cast<int64_t>(tokens) * rows;
  AMLQ_GRID_STRIDE(idx, total) y[idx] += bias[idx % rows];
}

__global__ void __launch_bounds__(kNormThreads)
    rms_norm_kernel(const float* __restrict__ x, const float* __restrict__ weight, float eps, int cols,
                    float* __restrict__ y) {
  const int64_t row = blockIdx.x;
  const float* xr = x + row * cols;
  float sum = 0.0f;
  for (int j = threadIdx.x; j < cols; j += kNormThreads) sum += xr[j] * xr[j];
  __shared__ float partial[kNormThreads / kWarpSize];
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(kFullMask, sum, o);
  if (threadIdx.x % kWarpSize == 0) partial[threadIdx.x / kWarpSize] = sum;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < kNormThreads / kWarpSize; ++w) total += partial[w];
  const float inv = rsqrtf(total / static_cast<float>(cols) + eps);
  for (int j = threadIdx.x; j < cols; j += kNormThreads) y[row * cols + j] = xr[j] * inv * weight[j];
}

__global__ void rope_kernel(float* __restrict__ x, int tokens, int seqlen, int heads, int head_dim,
                            const float* __restrict__ cos, const float* __restrict__ sin) {
  const int half = head_dim / 2;
  const int64_t total = static_cast<int64_t>(tokens) * heads * half;
  AMLQ_GRID_STRIDE(idx, total) {
    const int i = static_cast<int>(idx % half);
    const int64_t h = (idx / half) % heads;
    const int64_t row = idx / (static_cast<int64_t>(half) * heads);
    const int64_t pos = row % seqlen;
    float* head = x + row * heads * head_dim + h * head_dim;
    const float c = cos[pos * half + i];
    const float s = sin[pos * half + i];
    const float x1 = head[i];
    const float x2 = head[i + half];
    head[i] = x1 * c - x2 * s;
    head[i + half] = x2 * c + x1 * s;
  }
}

// Online softmax over keys 0..t: running max m, normalizer l, weighted sum acc.
__global__ void __launch_bounds__(kAttentionWarps * kWarpSize)
    attention_kernel(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, int batch,
                     int seqlen, int heads, int kv_heads, int head_dim, float* __restrict__ out) {
  const int lane = threadIdx.x % kWarpSize;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * kAttentionWarps + threadIdx.x / kWarpSize;
  if (item >= static_cast<int64_t>(batch) * heads * seqlen) return;  // uniform per warp
  const int t = static_cast<int>(item % seqlen);
  const int h = static_cast<int>((item / seqlen) % heads);
  const int64_t b = item / (static_cast<int64_t>(seqlen) * heads);
  const int kvh = h / (heads / kv_heads);
  const int64_t q_stride = static_cast<int64_t>(heads) * head_dim;
  const int64_t kv_stride = static_cast<int64_t>(kv_heads) * head_dim;
  const float* qrow = q + (b * seqlen + t) * q_stride + static_cast<int64_t>(h) * head_dim;
  const float scale = rsqrtf(static_cast<float>(head_dim));
  float qv[kAttentionMaxPerLane], acc[kAttentionMaxPerLane];
#pragma unroll
  for (int i = 0; i < kAttentionMaxPerLane; ++i) {
    const int d = i * kWarpSize + lane;
    qv[i] = d < head_dim ? qrow[d] : 0.0f;
    acc[i] = 0.0f;
  }
  float m = -FLT_MAX, l = 0.0f;
  for (int s = 0; s <= t; ++s) {
    const int64_t kv_row = (b * seqlen + s) * kv_stride + static_cast<int64_t>(kvh) * head_dim;
    float dot = 0.0f;
#pragma unroll
    for (int i = 0; i < kAttentionMaxPerLane; ++i) {
      const int d = i * kWarpSize + lane;
      if (d < head_dim) dot += qv[i] * k[kv_row + d];
    }
    for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(kFullMask, dot, o);
    dot *= scale;
    const float m_new = fmaxf(m, dot);
    const float correction = expf(m - m_new);
    const float p = expf(dot - m_new);
    l = l * correction + p;
#pragma unroll
    for (int i = 0; i < kAttentionMaxPerLane; ++i) {
      const int d = i * kWarpSize + lane;
      if (d < head_dim) acc[i] = acc[i] * correction + p * v[kv_row + d];
    }
    m = m_new;
  }
  float* orow = out + (b * seqlen + t) * q_stride + static_cast<int64_t>(h) * head_dim;
#pragma unroll
  for (int i = 0; i < kAttentionMaxPerLane; ++i) {
    const int d = i * kWarpSize + lane;
    if (d < head_dim) orow[d] = acc[i] / l;
  }
}

__global__ void swiglu_kernel(const float* __restrict__ gate, const float* __restrict__ up, int64_t count,
                              float* __restrict__ out) {
  AMLQ_GRID_STRIDE(i, count) {
    const float g = gate[i];
    out[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

#undef AMLQ_GRID_STRIDE

}  // namespace

cudaError_t launch_float_to_double(const float* in, double* out, int64_t count, cudaStream_t stream) {
  float_to_double_kernel<<<elementwise_blocks(count), kDefaultBlockThreads, 0, stream>>>(in, out, count);
  return cudaGetLastError();
}

cudaError_t launch_abs_column_sums(const float* x, int64_t tokens, int cols, double* abs_sum, cudaStream_t stream) {
  abs_column_sums_kernel<<<elementwise_blocks(cols), kDefaultBlockThreads, 0, stream>>>(x, tokens, cols, abs_sum);
  return cudaGetLastError();
}

cudaError_t launch_mirror_upper_to_lower(double* h, int n, cudaStream_t stream) {
  mirror_upper_to_lower_kernel<<<elementwise_blocks(static_cast<int64_t>(n) * n), kDefaultBlockThreads, 0, stream>>>(
      h, n);
  return cudaGetLastError();
}

cudaError_t launch_add_bias(float* y, int tokens, int rows, const float* bias, cudaStream_t stream) {
  add_bias_kernel<<<elementwise_blocks(static_cast<int64_t>(tokens) * rows), kDefaultBlockThreads, 0, stream>>>(
      y, tokens, rows, bias);
  return cudaGetLastError();
}

cudaError_t launch_rms_norm(const float* x, const float* weight, float eps, int tokens, int cols, float* y,
                            cudaStream_t stream) {
  if (tokens <= 0) return cudaSuccess;
  rms_norm_kernel<<<tokens, kNormThreads, 0, stream>>>(x, weight, eps, cols, y);
  return cudaGetLastError();
}

cudaError_t launch_rope(float* x, int tokens, int seqlen, int heads, int head_dim, const float* cos, const float* sin,
                        cudaStream_t stream) {
  const int64_t total = static_cast<int64_t>(tokens) * heads * (head_dim / 2);
  if (total == 0) return cudaSuccess;
  rope_kernel<<<elementwise_blocks(total), kDefaultBlockThreads, 0, stream>>>(x, tokens, seqlen, heads, head_dim, cos,
                                                                              sin);
  return cudaGetLastError();
}

cudaError_t launch_attention(const float* q, const float* k, const float* v, int batch, int seqlen, int heads,
                             int kv_heads, int head_dim, float* out, cudaStream_t stream) {
  if (head_dim > kWarpSize * kAttentionMaxPerLane || kv_heads <= 0 || heads % kv_heads != 0)
    return cudaErrorInvalidValue;
  const int64_t items = static_cast<int64_t>(batch) * heads * seqlen;
  if (items == 0) return cudaSuccess;
  attention_kernel<<<ceil_div(items, kAttentionWarps), kAttentionWarps * kWarpSize, 0, stream>>>(
      q, k, v, batch, seqlen, heads, kv_heads, head_dim, out);
  return cudaGetLastError();
}

cudaError_t launch_swiglu(const float* gate, const float* up, int64_t count, float* out, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  swiglu_kernel<<<elementwise_blocks(count), kDefaultBlockThreads, 0, stream>>>(gate, up, count, out);
  return cudaGetLastError();
}

}  // namespace amlq::cuda
