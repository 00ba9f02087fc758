#pragma once
// The top eigenpairs of a symmetric positive semi-definite matrix (a Gram
// matrix of a quantization error): what a rank-k reconstruction needs, without
// the full eigendecomposition (n^3 work with poor locality in Eigen's
// tridiagonalization, ~30 s at n = 4096 on one core).
#include "core/matrix.h"

namespace amlq {

struct TopEigen {
  VectorD values;           // k, descending (clamped at 0)
  Eigen::MatrixXd vectors;  // n x k, orthonormal columns
};

// Top k eigenpairs of g (n x n, symmetric): Householder tridiagonalization
// (Eigen's, the n^3 part), the top k eigenvalues of the tridiagonal matrix by
// bisection and their vectors by inverse iteration, orthogonalized within
// clusters (LAPACK's dstebz + dstein), mapped back through the Householder
// reflectors. Accurate to ~eps |g| like a full dense solver (the error of a
// rank-k reconstruction needs the vectors that accurate, not only the values),
// and several times faster than Eigen's full solver, which spends most of its
// time accumulating the tridiagonal QR's rotations into all n vectors.
// Small matrices (or k > n/4) use the full solver. Deterministic.
// Why not Lanczos: the whitened quantization error has a flat, noise-like
// spectrum (the top 128 of 4096 eigenvalues are separated by ~1e-4 of the
// largest); block Lanczos needed a Krylov space of more than n/2 to resolve
// them to the accuracy above (measured at n = 1024 and 2048).
TopEigen top_eigenpairs(const MatrixD& g, int k);

}  // namespace amlq
