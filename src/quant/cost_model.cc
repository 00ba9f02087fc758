#include "quant/cost_model.h"

#include "core/error.h"

namespace amlq {

double bits_per_weight(const QuantSpec& spec, int rows, int cols, int rank, FactorFormat format) {
  AMLQ_ASSERT(rows > 0 && cols > 0 && rank >= 0, "bpw of [{} x {}] rank {}", rows, cols, rank);
  const auto ranges = spec.part_columns(cols);
  double bits_per_row = 0;
  for (size_t p = 0; p < spec.parts.size(); ++p) {
    const int width = ranges[p].second - ranges[p].first;
    if (width <= 0) continue;
    const int bits = spec.parts[p].bits;
    const int group = spec.parts[p].group == 0 ? width : spec.parts[p].group;
    const int groups = (width + group - 1) / group;
    bits_per_row += static_cast<double>(bits) * width + (16.0 + bits) * groups;
  }
  double bpw = bits_per_row / cols;
  bpw += static_cast<double>(rank) * (static_cast<double>(rows) + cols) * factor_bits(format) /
         (static_cast<double>(rows) * cols);
  return bpw;
}

}  // namespace amlq
