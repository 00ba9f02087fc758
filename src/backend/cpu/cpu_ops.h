#pragma once
// The CPU backend's operations, one free function per Backend method, split by
// area: cpu_quant_ops.cc (Hessian, GPTQ/RTN, SVD, dequant linear) and
// cpu_forward_ops.cc (dense linear and the forward-pass pieces).
#include "backend/backend.h"
#include "core/parallel.h"

namespace amlq::cpu {

// Work is split into tiles whose sizes depend only on the problem shape, never on
// the thread count, and each tile is one single-threaded Eigen call: results are
// bit-identical for any number of compute threads (and so for any rank layout).
inline constexpr Eigen::Index kLinearRowTile = 256;   // output features per GEMM tile
inline constexpr Eigen::Index kHessianTile = 256;     // Hessian tile edge
inline constexpr Eigen::Index kElementRowTile = 64;   // rows per tile of element-wise ops
// Below this many flops a call runs its tiles on the calling thread only.
inline constexpr double kParallelMinFlops = 4e6;

// Runs fn(0..tiles-1), on the compute threads when the call is big enough.
inline void run_tiles(int tiles, double flops, const std::function<void(int)>& fn) {
  parallel_for(tiles, flops >= kParallelMinFlops ? compute_threads() : 1, fn);
}

void accumulate_hessian(const MatrixF& x, MatrixD& h, VectorD& abs_sum);
QuantizedMatrix quantize(const MatrixF& w, const MatrixD& h, const QuantSpec& spec, const GptqOptions& options);
// The CPU backend's SiteFactor: the host factor of quant/gptq.h.
class CpuSiteFactor final : public SiteFactor {
 public:
  explicit CpuSiteFactor(GptqFactor f) : factor(std::move(f)) {}
  const SiteFactorInfo& info() const override { return factor; }
  GptqFactor factor;
};
// The host factor behind a SiteFactor made by the CPU backend (Internal error otherwise).
const GptqFactor& host_factor(const SiteFactor& factor);
SvdResult svd(const MatrixD& m, int rank);
void dequant_linear(const MatrixF& x, const PackedLinear& layer, MatrixF& y);

void linear(const MatrixF& x, const MatrixF& w, const VectorF& bias, MatrixF& y);
void rms_norm(const MatrixF& x, const VectorF& weight, float eps, MatrixF& y);
void rope(MatrixF& x, int batch, int seqlen, int heads, int head_dim, const MatrixF& cos, const MatrixF& sin);
void attention(const MatrixF& q, const MatrixF& k, const MatrixF& v, int batch, int seqlen, int heads, int kv_heads,
               int head_dim, MatrixF& out);
void swiglu(const MatrixF& gate, const MatrixF& up, MatrixF& out);

}  // namespace amlq::cpu
