#pragma once
// GPTQ (OBQ with lazy block updates, METHOD.md 3) and RTN on the CPU. This is
// the reference implementation behind cpu::quantize.
//
// The work splits in two so that one input site's factorization serves every
// spec and every linear that reads the site (q/k/v share one Hessian, gate/up
// another): gptq_factor() orders the columns (act-order, dead inputs) and
// factors the damped Hessian once; gptq_quantize(w, factor, ...) runs the
// column-block loop for one weight matrix and one spec.
#include <cstdint>
#include <utility>
#include <vector>

#include "core/matrix.h"
#include "quant/quant_spec.h"

namespace amlq {

// The order GPTQ/RTN visit one site's input columns in.
struct GptqColumns {
  int cols = 0;
  bool has_hessian = false;    // false: RTN without statistics (identity order, nothing dead)
  bool act_order = false;      // perm sorts by descending diag(H), ties in original order
  std::vector<int32_t> perm;   // processing position -> original column; empty = identity
  std::vector<uint8_t> dead;   // by original column: H_ii == 0 (W[:, i] := 0, H_ii := 1); empty = none
  int dead_count = 0;
  double mean_diag = 0;        // mean of diag(H) after the dead fix: the dampening base

  int original(int j) const { return perm.empty() ? j : perm[static_cast<size_t>(j)]; }
  bool is_dead(int c) const { return !dead.empty() && dead[static_cast<size_t>(c)] != 0; }
};

// What every backend's factor of one site tells its users (backend.h SiteFactor).
struct SiteFactorInfo {
  GptqColumns columns;
  bool factored = false;     // false: only the column order (RTN)
  double damp_used = 0;      // the lambda finally used (options.damp * 10^damp_escalations)
  double damp_abs = 0;       // lambda * mean_diag: what was added to the diagonal
  int damp_escalations = 0;

  int cols() const { return columns.cols; }
};

// The damped Hessian of one site in processing order, H_d = P^T (H + lambda_abs I) P
// (dead H_ii set to 1 first), through its inverse Cholesky factor:
//   H_d^-1 = U^T U, U upper triangular.
// U^-1 is a square root of H_d (H_d = U^-1 U^-T), which is what makes the
// whitened error free: GPTQ's scaled errors Err (row j: (w_j - q_j) / U_jj)
// satisfy E_p = Err U, so tr(E H_d E^T) = ||Err||^2 (METHOD.md 3, 5).
struct GptqFactor : SiteFactorInfo {
  MatrixD u;  // cols x cols, upper, processing order; empty when not factored
};

// GPTQ's column blocks: runs of block_size columns from the start of each part
// range [begin, end), the last one of a part shorter. The reference's layout
// (fixed blocks from column 0) for single-part specs; blocks never cross parts.
// Groups need not align with blocks: a group's parameters are computed when it
// is entered, from the weights as they stood when the current block began
// (METHOD.md 3), so where a block starts decides what they see. Every backend
// uses these blocks.
std::vector<std::pair<int, int>> gptq_blocks(const std::vector<std::pair<int, int>>& part_ranges, int block_size);

// Column order of the undamped Hessian h (n x n; empty: identity order, n = cols).
GptqColumns gptq_columns(const MatrixD& h, int cols, bool act_order);

// Orders the columns and, when `factorize`, factors the damped Hessian, raising
// lambda x10 (options.max_damp_retries times, each logged) until the Cholesky
// succeeds; throws Numerical when it never does. h must be finite.
// Memory: U (8 n^2 bytes) plus n^2/4 doubles of scratch while inverting.
GptqFactor gptq_factor(const MatrixD& h, bool act_order, const GptqOptions& options, bool factorize = true);

// The checks every backend's quantize makes first: the spec fits the shape,
// shapes agree, a Hessian is present for GPTQ, and W and H are finite.
void check_quantize_inputs(const MatrixF& w, const MatrixD& h, const QuantSpec& spec, const GptqOptions& options);

// GPTQ of w (m x n) with a precomputed factor of its site, or RTN when
// !options.error_feedback (the factor then only supplies the column order).
// The factor's order must be the one the spec asks for (act-order or not).
// scaled_errors (optional, GPTQ only) receives Err^T: n x m, row j = the
// scaled errors (w_j - q_j) / U_jj of processing-order column j as fed back
// (float32, like the working copy they come from).
QuantizedMatrix gptq_quantize(const MatrixF& w, const GptqFactor& factor, const QuantSpec& spec,
                              const GptqOptions& options, MatrixF* scaled_errors = nullptr);

// GPTQ of w (m x n) under the undamped Hessian h (n x n), or RTN when
// !options.error_feedback (h may then be empty: no act-order, no dead columns).
// Factors h for this one call.
QuantizedMatrix gptq_quantize(const MatrixF& w, const MatrixD& h, const QuantSpec& spec, const GptqOptions& options);

// U upper triangular with h^-1 = U^T U (h symmetric positive definite, already
// damped). Returns false when h is not numerically positive definite.
bool inverse_cholesky_upper(const MatrixD& h, MatrixD& u);

// ||W - W_hat||_F^2 over the live columns of w (rows of q, original column
// order; dead columns count as zero on both sides), in double.
double reconstruction_error_sq(const MatrixF& w, const QuantizedMatrix& q, const GptqColumns& columns);

}  // namespace amlq
