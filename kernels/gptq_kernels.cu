// GPTQ kernels. The per-column recurrence inside a block runs here (rows are
// independent: one warp per row, the row's block segment held in registers);
// the update of all later columns after a block is one SGEMM (gptq_ops.cc).
#include <cfloat>

#include "kernels/gptq_kernels.h"
#include "kernels/launch_geometry.h"
#include "kernels/quant_grid.h"

namespace amlq::cuda {
namespace {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kSlots = kGptqMaxBlock / kWarpSize;
constexpr int kRowsPerBlock = 8;

__device__ inline float warp_min(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fminf(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}
__device__ inline float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}

// ---- Hessian preparation -------------------------------------------------------

__global__ void prepare_hessian_kernel(const double* __restrict__ h, double* __restrict__ out, int n,
                                       const int32_t* __restrict__ perm, double damp_abs) {
  const int64_t total = static_cast<int64_t>(n) * n;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = idx / n;
    const int64_t j = idx % n;
    const int64_t pi = perm ? perm[i] : i;
    const int64_t pj = perm ? perm[j] : j;
    double v = h[pi * n + pj];
    if (i == j) {
      if (v == 0.0) v = 1.0;
      v += damp_abs;
    }
    out[idx] = v;
  }
}

}  // namespace

cudaError_t launch_prepare_hessian(const double* h, double* out, int n, const int32_t* perm, double damp_abs,
                                   cudaStream_t stream) {
  const int64_t total = static_cast<int64_t>(n) * n;
  prepare_hessian_kernel<<<elementwise_blocks(total), kDefaultBlockThreads, 0, stream>>>(h, out, n, perm, damp_abs);
  return cudaGetLastError();
}

namespace {

__global__ void gather_columns_kernel(const float* __restrict__ w, float* __restrict__ out, int m, int n,
                                      const int32_t* __restrict__ perm, const uint8_t* __restrict__ dead) {
  const int64_t total = static_cast<int64_t>(m) * n;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = idx / n;
    const int64_t src = perm ? perm[idx % n] : idx % n;
    out[idx] = (dead && dead[src]) ? 0.0f : w[r * n + src];
  }
}

}  // namespace

cudaError_t launch_gather_columns(const float* w, float* out, int m, int n, const int32_t* perm, const uint8_t* dead,
                                  cudaStream_t stream) {
  const int64_t total = static_cast<int64_t>(m) * n;
  gather_columns_kernel<<<elementwise_blocks(total), kDefaultBlockThreads, 0, stream>>>(w, out, m, n, perm, dead);
  return cudaGetLastError();
}

namespace {

// Row-major view of a column-major lower factor L is L^T: keep its upper triangle.
__global__ void upper_to_float_kernel(const double* __restrict__ l, float* __restrict__ u, int n) {
  const int64_t total = static_cast<int64_t>(n) * n;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = idx / n;
    const int64_t j = idx % n;
    u[idx] = j >= i ? static_cast<float>(l[idx]) : 0.0f;
  }
}

}  // namespace

cudaError_t launch_upper_to_float(const double* l, float* u, int n, cudaStream_t stream) {
  const int64_t total = static_cast<int64_t>(n) * n;
  upper_to_float_kernel<<<elementwise_blocks(total), kDefaultBlockThreads, 0, stream>>>(l, u, n);
  return cudaGetLastError();
}

namespace {

__global__ void zero_lower_kernel(double* __restrict__ u, int n) {
  const int64_t total = static_cast<int64_t>(n) * n;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if (idx % n < idx / n) u[idx] = 0.0;
  }
}

}  // namespace

cudaError_t launch_zero_lower(double* u, int n, cudaStream_t stream) {
  const int64_t total = static_cast<int64_t>(n) * n;
  zero_lower_kernel<<<elementwise_blocks(total), kDefaultBlockThreads, 0, stream>>>(u, n);
  return cudaGetLastError();
}

namespace {

// ---- Static groups ---------------------------------------------------------------

__global__ void static_group_params_kernel(const float* __restrict__ w, int m, int n, const uint8_t* __restrict__ dead,
                                           GptqDevicePart part, bool symmetric) {
  const int64_t total = static_cast<int64_t>(m) * part.num_groups;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = idx / part.num_groups;
    const int64_t g = idx % part.num_groups;
    const int64_t c1 = min(static_cast<int64_t>(n), (g + 1) * part.group);
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int64_t c = g * part.group; c < c1; ++c) {
      const float v = (dead && dead[c]) ? 0.0f : w[r * n + c];
      lo = fminf(lo, v);
      hi = fmaxf(hi, v);
    }
    const GroupParams p = group_params(lo, hi, part.bits, symmetric);
    part.scales[idx] = float_to_fp16(p.scale);
    part.zeros[idx] = static_cast<uint8_t>(p.zero);
  }
}

}  // namespace

cudaError_t launch_static_group_params(const float* w, int m, int n, const uint8_t* dead, const GptqDevicePart& part,
                                       bool symmetric, cudaStream_t stream) {
  const int64_t total = static_cast<int64_t>(m) * part.num_groups;
  static_group_params_kernel<<<elementwise_blocks(total), kDefaultBlockThreads, 0, stream>>>(w, m, n, dead, part,
                                                                                             symmetric);
  return cudaGetLastError();
}

namespace {

// ---- The in-block recurrence -------------------------------------------------------

__device__ inline GroupParams load_params(const GptqDevicePart& part, int64_t row, int64_t g) {
  GroupParams p;
  p.scale = fp16_to_float(part.scales[row * part.num_groups + g]);
  p.zero = static_cast<float>(part.zeros[row * part.num_groups + g]);
  return p;
}

// One warp per row. Columns [b0, b0+bw) of the row live in registers: column c
// of the block is slot c/32 of lane c%32; the kernel never writes w. For each
// column: (new group? compute its parameters from the block-start weights in w),
// quantize, and with error feedback
// push the scaled error onto the later columns of the block and record it for
// the trailing GEMM.
__global__ void __launch_bounds__(kRowsPerBlock * kWarpSize)
    gptq_block_kernel(float* __restrict__ w, int m, int n, const float* __restrict__ u, int b0, int bw,
                      GptqDevicePart part, bool symmetric, bool static_groups, const int32_t* __restrict__ static_perm,
                      uint8_t* __restrict__ codes, float* __restrict__ err) {
  const int lane = threadIdx.x % kWarpSize;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (row >= m) return;  // uniform per warp
  const float* wrow = w + row * n;
  float v[kSlots];
#pragma unroll
  for (int s = 0; s < kSlots; ++s) {
    const int c = s * kWarpSize + lane;
    v[s] = c < bw ? wrow[b0 + c] : 0.0f;
  }
  GroupParams gp;
  if (!static_groups && (b0 - part.col_begin) % part.group != 0) {
    // A group opened by an earlier block: its parameters were computed there.
    gp = load_params(part, row, (b0 - part.col_begin) / part.group);
  }
  for (int c = 0; c < bw; ++c) {
    const int j = b0 + c;
    if (static_groups) {
      gp = load_params(part, row, (static_perm ? static_perm[j] : j) / part.group);
    } else if ((j - part.col_begin) % part.group == 0) {
      // From the weights as they stood when the block began (METHOD.md 3): the
      // registers hold the in-block updates, global memory does not. Columns
      // after the block have not received this block's trailing update yet.
      const int gend = min(j + part.group, part.col_end);
      float lo = FLT_MAX, hi = -FLT_MAX;
      for (int k = j + lane; k < gend; k += kWarpSize) {
        const float x = wrow[k];
        lo = fminf(lo, x);
        hi = fmaxf(hi, x);
      }
      lo = warp_min(lo);
      hi = warp_max(hi);
      gp = group_params(lo, hi, part.bits, symmetric);
      if (lane == 0) {
        const int64_t g = (j - part.col_begin) / part.group;
        part.scales[row * part.num_groups + g] = float_to_fp16(gp.scale);
        part.zeros[row * part.num_groups + g] = static_cast<uint8_t>(gp.zero);
      }
    }
    const int owner = c % kWarpSize;
    const int slot = c / kWarpSize;
    float mine = 0.0f;
#pragma unroll
    for (int s = 0; s < kSlots; ++s)
      if (s == slot) mine = v[s];
    const float x = __shfl_sync(kFullMask, mine, owner);
    const int q = quantize_code(x, gp, part.bits);
    if (lane == owner) codes[row * n + j] = static_cast<uint8_t>(q);
    if (u != nullptr) {
      const float* urow = u + static_cast<int64_t>(j) * n;
      const float e = (x - dequantize_code(q, gp)) / urow[j];
      if (lane == 0) err[row * bw + c] = e;
#pragma unroll
      for (int s = 0; s < kSlots; ++s) {
        const int cc = s * kWarpSize + lane;
        if (cc > c && cc < bw) v[s] -= e * urow[b0 + cc];
      }
    }
  }
}

}  // namespace

cudaError_t launch_gptq_block(float* w, int m, int n, const float* u, int b0, int bw, const GptqDevicePart& part,
                              bool symmetric, bool static_groups, const int32_t* static_perm, uint8_t* codes,
                              float* err, cudaStream_t stream) {
  const auto blocks = warp_per_row_blocks(m, kRowsPerBlock);
  gptq_block_kernel<<<blocks, kRowsPerBlock * kWarpSize, 0, stream>>>(w, m, n, u, b0, bw, part, symmetric,
                                                                     static_groups, static_perm, codes, err);
  return cudaGetLastError();
}

namespace {

__device__ inline void add_block_sum(double v, double* acc) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  if (threadIdx.x % kWarpSize == 0) atomicAdd(acc, v);
}

__global__ void sum_squares_kernel(const float* __restrict__ x, int64_t count, double* acc) {
  double sum = 0.0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const double v = x[i];
    sum += v * v;
  }
  add_block_sum(sum, acc);
}

__global__ void reconstruction_error_kernel(const float* __restrict__ w, int m, int n, const int32_t* __restrict__ perm,
                                            const uint8_t* __restrict__ dead, const uint8_t* __restrict__ codes,
                                            GptqDeviceParts parts, bool static_groups, double* acc) {
  const int64_t total = static_cast<int64_t>(m) * n;
  double sum = 0.0;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = idx / n;
    const int j = static_cast<int>(idx % n);
    int p = 0;
    while (p + 1 < parts.count && j >= parts.parts[p].col_end) ++p;
    const GptqDevicePart& part = parts.parts[p];
    const int original = perm ? perm[j] : j;
    const int g = static_groups ? original / part.group : (j - part.col_begin) / part.group;
    GroupParams gp;
    gp.scale = fp16_to_float(part.scales[r * part.num_groups + g]);
    gp.zero = static_cast<float>(part.zeros[r * part.num_groups + g]);
    const double target = (dead && dead[original]) ? 0.0 : static_cast<double>(w[r * n + original]);
    const double e = target - static_cast<double>(dequantize_code(static_cast<int>(codes[idx]), gp));
    sum += e * e;
  }
  add_block_sum(sum, acc);
}

__global__ void error_matrix_kernel(const float* __restrict__ w, int m, int n, const int32_t* __restrict__ perm,
                                    const uint8_t* __restrict__ dead, const uint8_t* __restrict__ codes,
                                    GptqDeviceParts parts, bool static_groups, double* __restrict__ e) {
  const int64_t total = static_cast<int64_t>(m) * n;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = idx / n;
    const int j = static_cast<int>(idx % n);
    int p = 0;
    while (p + 1 < parts.count && j >= parts.parts[p].col_end) ++p;
    const GptqDevicePart& part = parts.parts[p];
    const int original = perm ? perm[j] : j;
    if (dead && dead[original]) {
      e[idx] = 0.0;
      continue;
    }
    const int g = static_groups ? original / part.group : (j - part.col_begin) / part.group;
    GroupParams gp;
    gp.scale = fp16_to_float(part.scales[r * part.num_groups + g]);
    gp.zero = static_cast<float>(part.zeros[r * part.num_groups + g]);
    // The difference in float, as the CPU oracle (and dequantize-and-subtract) computes E.
    e[idx] = static_cast<double>(w[r * n + original] - dequantize_code(static_cast<int>(codes[idx]), gp));
  }
}

// One warp per row.
__global__ void row_sq_norms_kernel(const double* __restrict__ x, int64_t rows, int cols, double* __restrict__ out) {
  const int lane = threadIdx.x % kWarpSize;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (row >= rows) return;
  double sum = 0.0;
  for (int c = lane; c < cols; c += kWarpSize) {
    const double v = x[row * cols + c];
    sum += v * v;
  }
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(kFullMask, sum, o);
  if (lane == 0) out[row] = sum;
}

}  // namespace

cudaError_t launch_error_matrix(const float* w, int m, int n, const int32_t* perm, const uint8_t* dead,
                                const uint8_t* codes, const GptqDeviceParts& parts, bool static_groups, double* e,
                                cudaStream_t stream) {
  const int64_t total = static_cast<int64_t>(m) * n;
  if (total == 0) return cudaSuccess;
  error_matrix_kernel<<<elementwise_blocks(total), kDefaultBlockThreads, 0, stream>>>(w, m, n, perm, dead, codes,
                                                                                      parts, static_groups, e);
  return cudaGetLastError();
}

cudaError_t launch_row_sq_norms(const double* x, int64_t rows, int cols, double* out, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  row_sq_norms_kernel<<<warp_per_row_blocks(rows, kRowsPerBlock), kRowsPerBlock * kWarpSize, 0, stream>>>(x, rows,
                                                                                                         cols, out);
  return cudaGetLastError();
}

cudaError_t launch_sum_squares(const float* x, int64_t count, double* acc, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  sum_squares_kernel<<<elementwise_blocks(count, kDefaultBlockThreads, 1024), kDefaultBlockThreads, 0, stream>>>(
      x, count, acc);
  return cudaGetLastError();
}

cudaError_t launch_reconstruction_error_sq(const float* w, int m, int n, const int32_t* perm, const uint8_t* dead,
                                           const uint8_t* codes, const GptqDeviceParts& parts, bool static_groups,
                                           double* acc, cudaStream_t stream) {
  const int64_t total = static_cast<int64_t>(m) * n;
  if (total == 0) return cudaSuccess;
  reconstruction_error_kernel<<<elementwise_blocks(total, kDefaultBlockThreads, 1024), kDefaultBlockThreads, 0,
                                stream>>>(w, m, n, perm, dead, codes, parts, static_groups, acc);
  return cudaGetLastError();
}

}  // namespace amlq::cuda
