#include "lowrank/factor_rounding.h"

#include <algorithm>
#include <cmath>

#include "core/fp16.h"

namespace amlq {

void encode_int8_rows(const MatrixF& m, std::vector<int8_t>& values, std::vector<uint16_t>& scales) {
  values.resize(static_cast<size_t>(m.size()));
  scales.resize(static_cast<size_t>(m.rows()));
  for (Eigen::Index r = 0; r < m.rows(); ++r) {
    const float amax = m.cols() ? m.row(r).cwiseAbs().maxCoeff() : 0.0f;
    uint16_t bits = float_to_fp16(amax > 0 ? amax / 127.0f : 1.0f);
    if ((bits & 0x7fffu) == 0) bits = 0x0001u;  // below fp16 range: smallest subnormal, never a zero scale
    scales[r] = bits;
    const float s = fp16_to_float(bits);
    for (Eigen::Index c = 0; c < m.cols(); ++c)
      values[r * m.cols() + c] = static_cast<int8_t>(std::clamp(std::nearbyint(m(r, c) / s), -127.0f, 127.0f));
  }
}

MatrixF decode_int8_rows(const std::vector<int8_t>& values, const std::vector<uint16_t>& scales, Eigen::Index rows,
                         Eigen::Index cols) {
  MatrixF m(rows, cols);
  for (Eigen::Index r = 0; r < rows; ++r) {
    const float s = fp16_to_float(scales[r]);
    for (Eigen::Index c = 0; c < cols; ++c) m(r, c) = s * static_cast<float>(values[r * cols + c]);
  }
  return m;
}

LowRankFactors round_factors(const MatrixF& a, const MatrixF& b, FactorFormat format) {
  LowRankFactors f;
  f.format = format;
  if (format == FactorFormat::Fp16) {
    f.a = a.unaryExpr([](float v) { return round_to_fp16(v); });
    f.b = b.unaryExpr([](float v) { return round_to_fp16(v); });
  } else {
    std::vector<int8_t> values;
    std::vector<uint16_t> scales;
    encode_int8_rows(a, values, scales);
    f.a = decode_int8_rows(values, scales, a.rows(), a.cols());
    encode_int8_rows(b, values, scales);
    f.b = decode_int8_rows(values, scales, b.rows(), b.cols());
  }
  return f;
}

}  // namespace amlq
