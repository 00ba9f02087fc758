#pragma once
// QuantizedMatrix (+ low-rank factors) <-> PackedLinear, the stored form
// (word layout: quant/packed_format.h).
#include <string>

#include "core/matrix.h"
#include "lowrank/lowrank_types.h"
#include "quant/packed_linear.h"

namespace amlq {

// Packs codes, scales, zeros, permutation and (when `factors` is non-null and
// has rank > 0) the factors in their format. Fills bpw from the cost model;
// eps is left 0 for the caller (it knows the Hessian).
PackedLinear pack_linear(const std::string& name, const QuantizedMatrix& q, const LowRankFactors* factors,
                         LowRankMethod method);

// Exact inverse of pack_linear for the codes (solver diagnostics are not stored).
QuantizedMatrix unpack_codes(const PackedLinear& layer);

// The stored factors as floats (rank 0: empty matrices).
LowRankFactors unpack_factors(const PackedLinear& layer);

// W_hat (+ A B when include_lowrank) in the ORIGINAL column order.
MatrixF dequantize(const PackedLinear& layer, bool include_lowrank);

}  // namespace amlq
