#pragma once
// GPTQ (OBQ with lazy block updates, METHOD.md 3) and RTN on the CPU. This is
// the reference implementation behind cpu::quantize.
#include "core/matrix.h"
#include "quant/quant_spec.h"

namespace amlq {

// GPTQ of w (m x n) under the undamped Hessian h (n x n), or RTN when
// !options.error_feedback (h may then be empty: no act-order, no dead columns).
// Dampening, dead columns, act-order and static groups are handled here.
// The checks every backend's quantize makes first: the spec fits the shape,
// shapes agree, a Hessian is present for GPTQ, and W and H are finite.
void check_quantize_inputs(const MatrixF& w, const MatrixD& h, const QuantSpec& spec, const GptqOptions& options);

QuantizedMatrix gptq_quantize(const MatrixF& w, const MatrixD& h, const QuantSpec& spec, const GptqOptions& options);

// U upper triangular with h^-1 = U^T U (h symmetric positive definite, already
// damped). Returns false when h is not numerically positive definite.
bool inverse_cholesky_upper(const MatrixD& h, MatrixD& u);

}  // namespace amlq
