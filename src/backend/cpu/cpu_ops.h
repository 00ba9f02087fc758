#pragma once
// The CPU backend's operations, one free function per Backend method, split by
// area: cpu_quant_ops.cc (Hessian, GPTQ/RTN, SVD, dequant linear) and
// cpu_forward_ops.cc (dense linear and the forward-pass pieces).
#include "backend/backend.h"

namespace amlq::cpu {

void accumulate_hessian(const MatrixF& x, MatrixD& h, VectorD& abs_sum);
QuantizedMatrix quantize(const MatrixF& w, const MatrixD& h, const QuantSpec& spec, const GptqOptions& options);
SvdResult svd(const MatrixD& m, int rank);
void dequant_linear(const MatrixF& x, const PackedLinear& layer, MatrixF& y);

void linear(const MatrixF& x, const MatrixF& w, const VectorF& bias, MatrixF& y);
void rms_norm(const MatrixF& x, const VectorF& weight, float eps, MatrixF& y);
void rope(MatrixF& x, int batch, int seqlen, int heads, int head_dim, const MatrixF& cos, const MatrixF& sin);
void attention(const MatrixF& q, const MatrixF& k, const MatrixF& v, int batch, int seqlen, int heads, int kv_heads,
               int head_dim, MatrixF& out);
void swiglu(const MatrixF& gate, const MatrixF& up, MatrixF& out);

}  // namespace amlq::cpu
