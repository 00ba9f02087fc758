#pragma once
// Bits per weight of a configuration (METHOD.md 6). The one cost function used
// by measurement, search, packing and reports.
#include "lowrank/lowrank_types.h"
#include "quant/quant_spec.h"

namespace amlq {

// bpw = sum_p frac_p * (b_p + (16 + b_p) / G_p) + rank * (rows + cols) * f / (rows * cols)
// - frac_p is the part's actual share of the columns (QuantSpec::part_columns),
//   equal to the spec fraction whenever the split is exact;
// - G_p = the part's width for whole-row groups (group 0);
// - symmetric specs are charged for the zero too (the format stores it);
// - the act-order permutation is NOT counted, as in METHOD.md (it would add
//   32 / rows bits per weight, e.g. 0.008 for 4096 rows);
// - f = factor_bits(format); int8 factors' per-row fp16 scales are not counted
//   (16 * (rows + rank) bits, below 1e-3 bpw at model sizes).
double bits_per_weight(const QuantSpec& spec, int rows, int cols, int rank, FactorFormat format);

}  // namespace amlq
