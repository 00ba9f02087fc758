#pragma once
// Output error of a quantized layer under the calibration Hessian (METHOD.md 4).
#include "core/matrix.h"

namespace amlq {

// tr(M H M^T) for M (m x n) and symmetric H (n x n), accumulated in double.
double weighted_sq_norm(const MatrixF& m, const MatrixD& h);
double weighted_sq_norm(const MatrixD& m, const MatrixD& h);

// eps = tr(E H E^T) / tr(W H W^T), E = W - W_hat. When tr(W H W^T) is 0 the
// layer's calibration output is identically zero and nothing can hurt it: 0.
double normalized_error(const MatrixF& w, const MatrixF& w_hat, const MatrixD& h);

// Normalizes a known tr(E H E^T) by a known tr(W H W^T) with the same guard (never NaN).
double normalize_error(double error, double reference);

}  // namespace amlq
