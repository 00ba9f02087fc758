#pragma once
// Checked entry points for the fp64 linear algebra of the CUDA backend.
//
// Hessian: x is converted to fp64 on the device and accumulated with DSYRK. A
// product of two fp32 values is exact in fp64, so the only rounding is fp64
// summation: the result agrees with the CPU's fp64 accumulation to ~1e-12
// relative. (SGEMM + fp64 accumulation would be ~2x faster on the products but
// rounds every batch to fp32 precision, which METHOD.md 1 rules out.)
//
// SVD: eigendecomposition (cuSOLVER syevd, fp64) of the smaller Gram matrix
// G = M M^T (or M^T M), then the other side's vectors by one GEMM divided by
// sigma. Cost is one DSYRK + syevd of size min(m, n): far cheaper than gesvdj on
// the full matrix, at the price of squaring the condition number: singular
// values below ~1e-8 * sigma_max lose their relative accuracy (absolute error
// ~1e-16 * sigma_max^2 in sigma^2). The pipeline keeps the top ranks only and
// takes the tail error from ||M||_F^2 - sum of kept sigma^2, so that is
// acceptable. As in the CPU oracle, triplets with sigma <= 1e-10 sigma_max are
// returned as zeros.
#include <cstdint>
#include <vector>

#include "kernels/cuda_context.h"

namespace amlq::cuda {

// h (n x n, device, full symmetric) += x^T x; abs_sum (device, n) += column sums
// of |x|; x: device, tokens x n, fp32.
void accumulate_hessian(CudaContext& ctx, const float* x, int64_t tokens, int n, double* h, double* abs_sum);

struct GramSvd {
  std::vector<double> s;  // rank, descending
  std::vector<double> u;  // rows x rank, row-major
  std::vector<double> v;  // cols x rank, row-major
};

// Top `rank` (<= min(rows, cols)) singular triplets of m (device, rows x cols, row-major).
GramSvd gram_svd(CudaContext& ctx, const double* m, int rows, int cols, int rank);

}  // namespace amlq::cuda
