#include "quant/quantizer.h"

#include "core/error.h"

namespace amlq {

MatrixF dequantize(const QuantizedMatrix& q) {
  AMLQ_ASSERT(q.codes.size() == static_cast<size_t>(q.rows) * q.cols, "codes hold {} values for {} x {}",
              q.codes.size(), q.rows, q.cols);
  MatrixF w(q.rows, q.cols);
  for (const auto& part : q.parts) {
    for (int i = 0; i < q.rows; ++i) {
      const uint8_t* codes = q.codes.data() + static_cast<size_t>(i) * q.cols;
      const size_t param_row = static_cast<size_t>(i) * part.num_groups;
      for (int j = part.col_begin; j < part.col_end; ++j) {
        const int original = q.perm.empty() ? j : q.perm[j];
        const int g = group_of(part, j, original, q.spec.static_groups);
        const float scale = fp16_to_float(part.scales[param_row + g]);
        w(i, original) = dequantize_value(codes[j], scale, part.zeros[param_row + g]);
      }
    }
  }
  return w;
}

}  // namespace amlq
