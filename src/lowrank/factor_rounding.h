#pragma once
// Rounding of low-rank factors to their stored precision (METHOD.md 5): fp16
// values, or int8 with one fp16 scale per row (scale = max|row| / 127).
#include <cstdint>
#include <vector>

#include "core/matrix.h"
#include "lowrank/lowrank_types.h"

namespace amlq {

// Per-row int8 encoding; a zero row gets scale 1 and zero values.
void encode_int8_rows(const MatrixF& m, std::vector<int8_t>& values, std::vector<uint16_t>& scales);
MatrixF decode_int8_rows(const std::vector<int8_t>& values, const std::vector<uint16_t>& scales, Eigen::Index rows,
                         Eigen::Index cols);

// A, B rounded to what `format` stores (still held as float).
LowRankFactors round_factors(const MatrixF& a, const MatrixF& b, FactorFormat format);

}  // namespace amlq
