#pragma once
// Bits per weight of a configuration (METHOD.md 6). The one cost function used
// by measurement, search, packing and reports.
#include "lowrank/lowrank_types.h"
#include "quant/quant_spec.h"

namespace amlq {

// bpw = sum_p (b_p * w_p + (16 + b_p) * ceil(w_p / G_p)) / cols + rank * (rows + cols) * f / (rows * cols)
// - w_p is the part's actual width (QuantSpec::part_columns), so w_p / cols is
//   the spec fraction whenever the split is exact;
// - every stored group costs its fp16 scale and b-bit zero, including a shorter
//   last group when G_p does not divide w_p: (16 + b_p) * ceil(w_p / G_p) per row
//   (METHOD.md's (16 + b) / G per weight is the dividing case);
// - G_p = w_p for whole-row groups (group 0): one group per row;
// - static groups (one part) store ceil(cols / G) groups per row: the same count;
// - symmetric specs are charged for the zero too (the format stores it);
// - the act-order permutation is NOT counted, as in METHOD.md (it would add
//   32 / rows bits per weight, e.g. 0.008 for 4096 rows);
// - f = factor_bits(format); int8 factors' per-row fp16 scales are not counted
//   (16 * (rows + rank) bits, below 1e-3 bpw at model sizes).
double bits_per_weight(const QuantSpec& spec, int rows, int cols, int rank, FactorFormat format);

}  // namespace amlq
