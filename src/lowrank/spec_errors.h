#pragma once
// The output error of one linear quantized with one spec, and of the whitened
// low-rank correction of every candidate rank, from the site's shared factor
// (quant/gptq.h) instead of the Hessian (METHOD.md 3-5).
//
// With X the whitened error (rows x cols, processing order; X X^T = E H_d E^T):
//   tr(E H E^T)     = ||X||^2 - lambda_abs ||E||^2
//   tr(R_k H R_k^T) = ||X||^2 - sum_{l<=k} sigma_l^2 - lambda_abs ||R_k||^2
// where R_k = E - A_k B_k is what the exact whitened rank-k correction leaves
// (A = U_k Sigma_k^1/2, B = Sigma_k^1/2 V_k^T U from the SVD of X). No m x n x n
// product with H is needed.
//
// exact: X = E_p U^-1 by a triangular solve in double: agrees with
//   tr(E H E^T) computed from H to ~1e-12 relative, but the solve costs m n^2
//   fp64 flops per spec (twice the GEMM work of GPTQ's own updates at half the
//   rate).
// approximate: X = GPTQ's scaled errors, taken for free from the float32
//   working copy (E_p = Err U up to the working copy's rounding: ~1e-6..1e-4
//   relative, worst at 8 bits), and a looser eigensolver tolerance.
#include <vector>

#include "core/matrix.h"
#include "quant/gptq.h"
#include "quant/quant_spec.h"

namespace amlq {

enum class ErrorMode { Exact, Approximate };

struct SpecErrorOptions {
  std::vector<int> ranks{0};  // ascending; 0 = no correction; each <= min(rows, cols)
  ErrorMode mode = ErrorMode::Exact;
  bool per_row = false;       // also return every row's share (row sampling's standard error)
  int krylov_steps = 2;       // approximate mode: power steps of the randomized block Krylov SVD
};

struct SpecErrors {
  std::vector<double> error;  // tr(R_k H R_k^T) under the undamped H, one per requested rank (clamped at 0)
  MatrixD per_row;            // rows x ranks.size() when asked: each row's share (columns sum to `error`)
  double scaled_error_sq = 0;  // ||X||^2 = tr(E H_d E^T)
};

// Quantizes w (rows x cols) with `spec` at the site `factor` (which must be
// factored) and measures the errors above. RTN (!options.error_feedback) is
// measured exactly whatever the mode (it has no scaled errors).
// quantized (optional) receives the quantized matrix.
// Working set (bytes, s = rows, n = cols, n' = min(s, n), k = top rank, b ~ 1.25 k):
//   the GPTQ pass: 5 s n (float working copy + codes);
//   then 9 s n (codes + X in double) + 8 n'^2 (Gram) + 8 n' (n'/2 + b) (Krylov
//   basis, worst case) + 8 (s + 2n) k.
SpecErrors measure_spec_errors(const MatrixF& w, const GptqFactor& factor, const QuantSpec& spec,
                               const GptqOptions& options, const SpecErrorOptions& request,
                               QuantizedMatrix* quantized = nullptr);

// The arithmetic every backend shares once it has the pieces (rows s, cols n,
// top k triplets of X = U_s diag(sigma) V^T; zero triplets for sigma ~ 0):
// sigma (k), left = U_s (s x k), eb = E_p U^T V (s x k), bt = U^T V (n x k),
// x_sq / e_sq = per-row ||X_i||^2 / ||E_i||^2, damp_abs = lambda_abs.
// Fills out.error, out.per_row (when asked) and out.scaled_error_sq.
void combine_whitened_errors(const VectorD& sigma, const Eigen::MatrixXd& left, const Eigen::MatrixXd& eb,
                             const Eigen::MatrixXd& bt, const VectorD& x_sq, const VectorD& e_sq, double damp_abs,
                             const SpecErrorOptions& request, SpecErrors& out);

// tr(W H W^T) = ||W_p U^-1||^2 - lambda_abs ||W_live||^2 from the factor: one
// triangular solve (m n^2 flops) instead of the m x n x n product with H.
double weighted_sq_norm(const MatrixF& w, const GptqFactor& factor);

}  // namespace amlq
