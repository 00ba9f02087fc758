#pragma once
// Device side of GPTQ/RTN (METHOD.md 3), checked entry points: Hessian
// preparation, the inverse Cholesky factor (cuSOLVER, fp64), and the column-block
// loop (custom in-block kernel + cuBLAS SGEMM trailing updates). Weights are fp32
// on the device in processing order. Host planning: kernels/gptq_plan.h.
#include <cstdint>
#include <vector>

#include "kernels/column_block.h"
#include "kernels/cuda_context.h"
#include "kernels/gptq_kernels.h"

namespace amlq::cuda {

// out = P^T H P (perm may be null), then H_ii := 1 where H_ii == 0, then
// H_ii += damp_abs. h and out are n x n, distinct.
void prepare_hessian(CudaContext& ctx, const double* h, double* out, int n, const int32_t* perm, double damp_abs);

// out[:, j] = w[:, perm[j]], or 0 where that original column is dead.
void gather_weight_columns(CudaContext& ctx, const float* w, float* out, int m, int n, const int32_t* perm,
                           const uint8_t* dead);

// h (prepared) -> in place, U = upper Cholesky factor of h^-1 (row-major fp64,
// zeros below the diagonal). Returns false when h is not positive definite (h
// is then garbage).
bool inverse_cholesky_upper(CudaContext& ctx, double* h, int n);
// u_float = the fp32 copy of a row-major upper factor (zeros below the diagonal).
void upper_to_float(CudaContext& ctx, const double* u, int n, float* u_float);

// Static groups: parameters of consecutive ORIGINAL columns of w (m x n, original
// order; dead columns read as 0) into part.scales / part.zeros.
void static_group_params(CudaContext& ctx, const float* w, int m, int n, const uint8_t* dead,
                         const GptqDevicePart& part, bool symmetric);

// The block loop over w (m x n, processing order, modified in place). u == nullptr
// means RTN (no error feedback). static_perm: with static groups, the column
// permutation (or null for identity) that maps a column to its original group.
// With error feedback, *scaled_err_sq (device) += sum of the squared scaled
// errors (w - q) / U_jj: tr(E H_damped E^T) (METHOD.md 4).
void run_gptq_blocks(CudaContext& ctx, float* w, int m, int n, const float* u, const std::vector<ColumnBlock>& blocks,
                     const std::vector<GptqDevicePart>& parts, bool symmetric, bool static_groups,
                     const int32_t* static_perm, uint8_t* codes, double* scaled_err_sq);

// e = W_p - W_hat_p in fp64 (see launch_error_matrix).
void error_matrix(CudaContext& ctx, const float* w, int m, int n, const int32_t* perm, const uint8_t* dead,
                  const uint8_t* codes, const std::vector<GptqDevicePart>& parts, bool static_groups, double* e);
// out[r] = ||x[r, :]||^2 (x: rows x cols, row-major fp64).
void row_sq_norms(CudaContext& ctx, const double* x, int64_t rows, int cols, double* out);

// ||W - W_hat||_F^2 (see launch_reconstruction_error_sq); synchronizes.
double reconstruction_error_sq(CudaContext& ctx, const float* w, int m, int n, const int32_t* perm,
                               const uint8_t* dead, const uint8_t* codes, const std::vector<GptqDevicePart>& parts,
                               bool static_groups);

}  // namespace amlq::cuda
