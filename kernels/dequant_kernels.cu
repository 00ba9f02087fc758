// Packed-weight inference kernels. The fused GEMV gives each row to one warp.
// A warp walks its row in tiles of 1024 codes: it loads the tile's 32*BITS words
// with one coalesced 128-byte read per instruction into shared memory, then lane
// l decodes columns l, l+32, ... so that its x reads are coalesced too (x is
// shared by all rows and stays in L1/L2).
#include "core/fp16.h"
#include "kernels/dequant_kernels.h"
#include "kernels/launch_geometry.h"
#include "kernels/quant_grid.h"
#include "quant/packed_format.h"

namespace amlq::cuda {
namespace {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kGemvWarps = 8;
constexpr int kTileCodes = 32 * kWarpSize;  // codes a warp decodes per tile
constexpr int kProjectThreads = 256;

__global__ void gather_columns_f32_kernel(const float* __restrict__ x, float* __restrict__ xp, int tokens, int cols,
                                          const int32_t* __restrict__ perm) {
  const int64_t total = static_cast<int64_t>(tokens) * cols;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = idx / cols;
    xp[idx] = x[t * cols + perm[idx % cols]];
  }
}

__global__ void __launch_bounds__(kProjectThreads)
    lowrank_project_kernel(const float* __restrict__ x, const float* __restrict__ b, int tokens, int cols, int rank,
                           float* __restrict__ t) {
  const int k = blockIdx.x;
  const float* brow = b + static_cast<int64_t>(k) * cols;
  float acc[kGemvMaxTokens];
#pragma unroll
  for (int i = 0; i < kGemvMaxTokens; ++i) acc[i] = 0.0f;
  for (int j = threadIdx.x; j < cols; j += kProjectThreads) {
    const float bv = brow[j];
#pragma unroll
    for (int i = 0; i < kGemvMaxTokens; ++i)
      if (i < tokens) acc[i] += bv * x[static_cast<int64_t>(i) * cols + j];
  }
  __shared__ float partial[kProjectThreads / kWarpSize][kGemvMaxTokens];
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
#pragma unroll
  for (int i = 0; i < kGemvMaxTokens; ++i) {
    float v = acc[i];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
    if (lane == 0) partial[warp][i] = v;
  }
  __syncthreads();
  if (threadIdx.x < tokens) {
    float sum = 0.0f;
    for (int w = 0; w < kProjectThreads / kWarpSize; ++w) sum += partial[w][threadIdx.x];
    t[static_cast<int64_t>(threadIdx.x) * rank + k] = sum;
  }
}

// Code `index` of a tile held in shared memory (a code may straddle two words).
template <int BITS>
__device__ inline uint32_t tile_code(const uint32_t* tile, int index) {
  const int bit = index * BITS;
  const int word = bit / 32;
  const int shift = bit % 32;
  uint32_t v = tile[word] >> shift;
  if constexpr (32 % BITS != 0) {
    if (shift + BITS > 32) v |= tile[word + 1] << (32 - shift);
  }
  return v & ((1u << BITS) - 1u);
}

template <int BITS, int TOK>
__global__ void __launch_bounds__(kGemvWarps * kWarpSize)
    dequant_gemv_kernel(DevicePackedPart part, int rows, int cols, const float* __restrict__ xp,
                        const float* __restrict__ a, const float* __restrict__ t, int rank,
                        const float* __restrict__ bias, int tokens, bool accumulate, float* __restrict__ y) {
  // One spare word per warp: a straddling code of the last tile may peek one word past it.
  __shared__ uint32_t tiles[kGemvWarps][32 * BITS + 1];
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kGemvWarps + warp;
  if (row >= rows) return;  // uniform per warp; no block-wide barrier below
  uint32_t* tile = tiles[warp];
  const int width = part.col_end - part.col_begin;
  const int64_t wpr = packed::words_per_row(width, BITS);
  const uint32_t* row_words = part.codes + row * wpr;
  const uint16_t* row_scales = part.scales + row * part.num_groups;
  const uint32_t* row_zeros = part.zeros + row * packed::words_per_row(part.num_groups, BITS);
  const float* xbase = xp + part.col_begin;

  float acc[TOK];
#pragma unroll
  for (int i = 0; i < TOK; ++i) acc[i] = 0.0f;
  int cached_group = -1;
  float scale = 0.0f, zero = 0.0f;

  for (int64_t tile_begin = 0; tile_begin < width; tile_begin += kTileCodes) {
    const int64_t word0 = tile_begin / 32 * BITS;
#pragma unroll
    for (int k = 0; k < BITS; ++k) {
      const int64_t w = word0 + k * kWarpSize + lane;
      tile[k * kWarpSize + lane] = w < wpr ? row_words[w] : 0u;
    }
    if (lane == 0) tile[32 * BITS] = 0u;
    __syncwarp();
#pragma unroll 8
    for (int i = 0; i < 32; ++i) {
      const int index = i * kWarpSize + lane;
      const int64_t col = tile_begin + index;
      if (col < width) {
        const int g = static_cast<int>(col / part.group);
        if (g != cached_group) {
          cached_group = g;
          scale = fp16_to_float(row_scales[g]);
          zero = static_cast<float>(packed::get_code(row_zeros, g, BITS));
        }
        const float wv = scale * (static_cast<float>(tile_code<BITS>(tile, index)) - zero);
#pragma unroll
        for (int tok = 0; tok < TOK; ++tok)
          if (tok < tokens) acc[tok] += wv * xbase[static_cast<int64_t>(tok) * cols + col];
      }
    }
    __syncwarp();
  }

  if (!accumulate && rank > 0) {
    const float* arow = a + row * rank;
    for (int k = lane; k < rank; k += kWarpSize) {
      const float av = arow[k];
#pragma unroll
      for (int tok = 0; tok < TOK; ++tok)
        if (tok < tokens) acc[tok] += av * t[static_cast<int64_t>(tok) * rank + k];
    }
  }
#pragma unroll
  for (int tok = 0; tok < TOK; ++tok) {
    float v = acc[tok];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
    acc[tok] = v;
  }
  if (lane == 0) {
#pragma unroll
    for (int tok = 0; tok < TOK; ++tok) {
      if (tok < tokens) {
        float* out = y + static_cast<int64_t>(tok) * rows + row;
        float v = acc[tok];
        if (accumulate) {
          v += *out;
        } else if (bias) {
          v += bias[row];
        }
        *out = v;
      }
    }
  }
}

template <int BITS, int TOK>
cudaError_t launch_gemv(const DevicePackedLinear& layer, const DevicePackedPart& part, const float* xp, const float* t,
                        int tokens, bool accumulate, float* y, cudaStream_t stream) {
  const auto blocks = warp_per_row_blocks(layer.rows, kGemvWarps);
  dequant_gemv_kernel<BITS, TOK><<<blocks, kGemvWarps * kWarpSize, 0, stream>>>(
      part, layer.rows, layer.cols, xp, layer.a, t, layer.rank, layer.bias, tokens, accumulate, y);
  return cudaGetLastError();
}

template <int BITS>
cudaError_t launch_gemv_bits(const DevicePackedLinear& layer, const DevicePackedPart& part, const float* xp,
                             const float* t, int tokens, bool accumulate, float* y, cudaStream_t stream) {
  switch (gemv_token_bucket(tokens)) {
    case 1: return launch_gemv<BITS, 1>(layer, part, xp, t, tokens, accumulate, y, stream);
    case 2: return launch_gemv<BITS, 2>(layer, part, xp, t, tokens, accumulate, y, stream);
    case 4: return launch_gemv<BITS, 4>(layer, part, xp, t, tokens, accumulate, y, stream);
    case 8: return launch_gemv<BITS, 8>(layer, part, xp, t, tokens, accumulate, y, stream);
    default: return launch_gemv<BITS, 16>(layer, part, xp, t, tokens, accumulate, y, stream);
  }
}

__global__ void dequantize_kernel(DevicePackedLinear layer, float* __restrict__ w) {
  const int64_t total = static_cast<int64_t>(layer.rows) * layer.cols;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = idx / layer.cols;
    const int j = static_cast<int>(idx % layer.cols);
    int p = 0;
    while (p + 1 < layer.num_parts && j >= layer.parts[p].col_end) ++p;
    const DevicePackedPart& part = layer.parts[p];
    const int local = j - part.col_begin;
    const int original = layer.perm ? layer.perm[j] : j;
    const int g = layer.static_groups ? original / part.group : local / part.group;
    const uint32_t* row_words = part.codes + r * packed::words_per_row(part.col_end - part.col_begin, part.bits);
    const uint32_t* row_zeros = part.zeros + r * packed::words_per_row(part.num_groups, part.bits);
    const float scale = fp16_to_float(part.scales[r * part.num_groups + g]);
    const uint32_t zero = packed::get_code(row_zeros, g, part.bits);
    w[r * layer.cols + original] = dequantize_code(packed::get_code(row_words, local, part.bits), scale, zero);
  }
}

}  // namespace

cudaError_t launch_gather_columns_f32(const float* x, float* xp, int tokens, int cols, const int32_t* perm,
                                      cudaStream_t stream) {
  const int64_t total = static_cast<int64_t>(tokens) * cols;
  gather_columns_f32_kernel<<<elementwise_blocks(total), kDefaultBlockThreads, 0, stream>>>(x, xp, tokens, cols, perm);
  return cudaGetLastError();
}

cudaError_t launch_lowrank_project(const float* x, const float* b, int tokens, int cols, int rank, float* t,
                                   cudaStream_t stream) {
  if (rank <= 0) return cudaSuccess;
  if (!gemv_supports_tokens(tokens)) return cudaErrorInvalidValue;
  lowrank_project_kernel<<<rank, kProjectThreads, 0, stream>>>(x, b, tokens, cols, rank, t);
  return cudaGetLastError();
}

cudaError_t launch_dequant_gemv_part(const DevicePackedLinear& layer, int part, const float* xp, const float* t,
                                     int tokens, bool accumulate, float* y, cudaStream_t stream) {
  if (!gemv_supports_tokens(tokens) || part < 0 || part >= layer.num_parts || layer.static_groups)
    return cudaErrorInvalidValue;
  const DevicePackedPart& p = layer.parts[part];
  switch (p.bits) {
    case 2: return launch_gemv_bits<2>(layer, p, xp, t, tokens, accumulate, y, stream);
    case 3: return launch_gemv_bits<3>(layer, p, xp, t, tokens, accumulate, y, stream);
    case 4: return launch_gemv_bits<4>(layer, p, xp, t, tokens, accumulate, y, stream);
    case 5: return launch_gemv_bits<5>(layer, p, xp, t, tokens, accumulate, y, stream);
    case 6: return launch_gemv_bits<6>(layer, p, xp, t, tokens, accumulate, y, stream);
    case 7: return launch_gemv_bits<7>(layer, p, xp, t, tokens, accumulate, y, stream);
    case 8: return launch_gemv_bits<8>(layer, p, xp, t, tokens, accumulate, y, stream);
    default: return cudaErrorInvalidValue;
  }
}

cudaError_t launch_dequantize(const DevicePackedLinear& layer, float* w, cudaStream_t stream) {
  const int64_t total = static_cast<int64_t>(layer.rows) * layer.cols;
  dequantize_kernel<<<elementwise_blocks(total), kDefaultBlockThreads, 0, stream>>>(layer, w);
  return cudaGetLastError();
}

}  // namespace amlq::cuda
