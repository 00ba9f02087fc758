#pragma once
// Launchers for inference with packed weights (dequant_kernels.cu):
//   y = dequant(codes, scales, zeros) x + A (B x) (+ bias)
// The fused path (1..16 tokens) runs t = B x in a small kernel, then one
// warp-per-row GEMV launch per part whose epilogue adds A t and the bias. Larger
// batches dequantize to fp32 and use cuBLAS (kernels/dequant_ops.h).
#include <cuda_runtime.h>

#include <cstdint>

namespace amlq::cuda {

inline constexpr int kMaxDeviceParts = 8;

// One part of a packed layer on the device (layout: quant/packed_format.h).
struct DevicePackedPart {
  int col_begin = 0;  // processing-order columns
  int col_end = 0;
  int bits = 4;
  int group = 128;  // resolved; with static groups, a group of ORIGINAL columns
  int num_groups = 0;
  const uint32_t* codes = nullptr;   // rows x words_per_row(width, bits)
  const uint16_t* scales = nullptr;  // rows x num_groups, fp16 bits
  const uint32_t* zeros = nullptr;   // rows x words_per_row(num_groups, bits)
};

struct DevicePackedLinear {
  int rows = 0;
  int cols = 0;
  int num_parts = 0;
  DevicePackedPart parts[kMaxDeviceParts];
  const int32_t* perm = nullptr;  // processing -> original column; null = identity
  bool static_groups = false;     // group of column j is perm[j] / group
  int rank = 0;
  const float* a = nullptr;     // rows x rank (dequantized factor values)
  const float* b = nullptr;     // rank x cols, original column order
  const float* bias = nullptr;  // rows, or null
};

// xp[t, j] = x[t, perm[j]] (tokens x cols).
cudaError_t launch_gather_columns_f32(const float* x, float* xp, int tokens, int cols, const int32_t* perm,
                                      cudaStream_t stream);

// t[tok, k] = sum_j b[k, j] x[tok, j] for tokens <= kGemvMaxTokens; one block per k.
cudaError_t launch_lowrank_project(const float* x, const float* b, int tokens, int cols, int rank, float* t,
                                   cudaStream_t stream);

// y (tokens x rows) (+)= part p of the layer applied to xp (tokens x cols,
// processing order). The first part (accumulate = false) writes y and adds
// A t (t: tokens x rank, may be null when rank == 0) and the bias. Not for static groups.
cudaError_t launch_dequant_gemv_part(const DevicePackedLinear& layer, int part, const float* xp, const float* t,
                                     int tokens, bool accumulate, float* y, cudaStream_t stream);

// w (rows x cols, ORIGINAL column order) = dequantized weights, every part.
cudaError_t launch_dequantize(const DevicePackedLinear& layer, float* w, cudaStream_t stream);

}  // namespace amlq::cuda
