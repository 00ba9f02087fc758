#pragma once
// Launch-shape arithmetic shared by the launchers and their unit tests. Plain
// host code: no CUDA headers, so CPU-only tests can check it.
#include <cstdint>

namespace amlq::cuda {

inline constexpr int kWarpSize = 32;
inline constexpr int kDefaultBlockThreads = 256;

constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Blocks for one thread per element (grid-stride loops take over past the cap,
// which keeps gridDim.x inside its limit for any element count).
constexpr int64_t elementwise_blocks(int64_t elements, int threads = kDefaultBlockThreads,
                                     int64_t max_blocks = 65535LL * 32) {
  const int64_t need = ceil_div(elements, threads);
  return need < 1 ? 1 : (need > max_blocks ? max_blocks : need);
}

// One warp per row, `warps_per_block` rows per block.
constexpr int64_t warp_per_row_blocks(int64_t rows, int warps_per_block) {
  const int64_t need = ceil_div(rows, warps_per_block);
  return need < 1 ? 1 : need;
}

// The fused dequant GEMV is compiled for these token counts; a batch runs with
// the smallest one that holds it (padding tokens are never read or written).
inline constexpr int kGemvMaxTokens = 16;
constexpr int gemv_token_bucket(int tokens) {
  return tokens <= 1 ? 1 : tokens <= 2 ? 2 : tokens <= 4 ? 4 : tokens <= 8 ? 8 : 16;
}
constexpr bool gemv_supports_tokens(int tokens) { return tokens >= 1 && tokens <= kGemvMaxTokens; }

// A packed row of `bits`-bit codes is read in chunks of 32 codes = `bits` words,
// one chunk per lane per step: lanes read consecutive words (coalesced).
constexpr int64_t gemv_chunks_per_row(int64_t cols) { return ceil_div(cols, 32); }

// The GPTQ in-block kernel keeps a row's block segment in registers: at most this
// many columns (4 per lane).
inline constexpr int kGptqMaxBlock = 128;

// Attention runs one warp per (sequence, head, query); a lane holds this many
// elements of the head, so head_dim <= 32 * kAttentionMaxPerLane.
inline constexpr int kAttentionMaxPerLane = 8;

}  // namespace amlq::cuda
