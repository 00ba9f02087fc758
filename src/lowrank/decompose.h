#pragma once
// Low-rank reconstruction of a quantization error E = W - W_hat (METHOD.md 5).
// One decomposition per (layer, quantization config) yields the error of EVERY
// rank up to max_rank, so the measure stage pays one SVD per config.
#include "backend/backend.h"
#include "core/matrix.h"
#include "lowrank/lowrank_types.h"

namespace amlq {

struct LowRankOptions {
  // Whiten: H += damp * mean(diag H) * I before its Cholesky (x10, up to 3
  // times, when that fails); dead inputs (H_ii = 0) get H_ii = 1 as in GPTQ.
  double damp = 0.01;
  // tr(W H W^T) and tr(E H E^T) when the caller already has them (e.g. the
  // reference once per layer, QuantizedMatrix::output_error); negative: computed.
  double weight_norm_h = -1;
  double error_norm_h = -1;
};

// Factors of all ranks 1..max_rank of one error matrix. A's columns are
// orthogonal for every method (A = U_k Sigma_k^1/2, B = Sigma_k^1/2 V_k^T T^-1
// with T = I, S or L: the singular values are split evenly between the factors
// so that both have a similar range for fp16/int8).
struct LowRankDecomposition {
  LowRankMethod method = LowRankMethod::None;
  int rows = 0;
  int cols = 0;
  MatrixD a;                 // rows x max_rank
  MatrixD b;                 // max_rank x cols
  std::vector<double> eps;   // eps[k] for k = 0..max_rank
  double weight_norm_h = 0;  // tr(W H W^T), the normalizer
  double error_norm_h = 0;   // tr(E H E^T), the rank-0 error
  double damp_used = 0;      // whiten: the lambda finally used

  int max_rank() const { return static_cast<int>(a.cols()); }
  // Normalized output error tr(R H R^T) / tr(W H W^T) with R = E - A_k B_k, for
  // the unrounded factors, under the UNDAMPED H (for whiten this differs from
  // the tail sum of the whitened spectrum only by the dampening term). Storage
  // rounding (fp16: ~1e-3 relative on the correction) is not included: use
  // lowrank_eps on factors(k, format) for the stored result's exact error.
  // k > max_rank() is clamped when max_rank() == min(rows, cols) (more rank adds
  // nothing) and an Internal error otherwise.
  double eps_at(int k) const;
  // The first k factors rounded to `format`'s precision.
  LowRankFactors factors(int k, FactorFormat format) const;
};

// max_rank is clamped to min(rows, cols) (documented above). act_scale (the
// per-input mean |x|) is used by L2QER only; entries <= 0 or non-finite are
// replaced by the smallest positive entry (1 when there is none), so S^-1 exists.
// method None (or max_rank 0) gives eps[0] only.
LowRankDecomposition decompose_error(Backend& backend, const MatrixF& w, const MatrixF& w_hat, const MatrixD& h,
                                     const VectorD& act_scale, LowRankMethod method, int max_rank,
                                     const LowRankOptions& options = {});

// Exact normalized error of W_hat + A B as stored (any factors, rank 0 allowed).
// weight_norm_h: tr(W H W^T) if known, negative to compute it.
double lowrank_eps(const MatrixF& w, const MatrixF& w_hat, const MatrixD& h, const LowRankFactors& factors,
                   double weight_norm_h = -1);

}  // namespace amlq
