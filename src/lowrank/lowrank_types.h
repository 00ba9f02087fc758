#pragma once
// Low-rank reconstruction of the quantization error (METHOD.md section 5).
#include <string>
#include <string_view>

#include "core/matrix.h"

namespace amlq {

enum class LowRankMethod { None, Svd, L2qer, Whiten };
enum class FactorFormat { Fp16, Int8 };

std::string lowrank_method_name(LowRankMethod method);        // "none", "svd", "l2qer", "whiten"
LowRankMethod parse_lowrank_method(std::string_view name);    // throws Usage
std::string factor_format_name(FactorFormat format);          // "fp16", "int8"
FactorFormat parse_factor_format(std::string_view name);      // throws Usage
int factor_bits(FactorFormat format);                          // 16 or 8 (the f of METHOD.md 6)

// A (m x k) and B (k x n) such that the layer computes W_hat x + A (B x).
// Values are held in float but already rounded to what `format` stores.
struct LowRankFactors {
  FactorFormat format = FactorFormat::Fp16;
  MatrixF a;
  MatrixF b;
  int rank() const { return static_cast<int>(a.cols()); }
};

// Thin SVD: M ~= U diag(S) V^T, top `rank` triplets; frobenius_sq = ||M||_F^2 (all of them).
struct SvdResult {
  MatrixD u;  // m x rank
  VectorD s;  // rank, descending
  MatrixD v;  // n x rank
  double frobenius_sq = 0;
};

}  // namespace amlq
