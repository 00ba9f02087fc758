#include "model/rope.h"

#include <cmath>
#include <numbers>

#include "core/error.h"

namespace amlq {

std::vector<double> rope_inverse_frequencies(const ModelConfig& config) {
  const int dim = config.head_dim;
  AMLQ_REQUIRE(dim > 0 && dim % 2 == 0, "config.json: head_dim {} must be positive and even for RoPE", dim);
  std::vector<double> inv(static_cast<size_t>(dim / 2));
  for (int i = 0; i < dim / 2; ++i) inv[i] = 1.0 / std::pow(config.rope_theta, (2.0 * i) / dim);

  const RopeScaling& rs = config.rope_scaling;
  switch (rs.type) {
    case RopeScaling::Type::None:
      break;
    case RopeScaling::Type::Linear:
      // HF divides positions by the factor; dividing the frequencies is the same product.
      for (double& f : inv) f /= rs.factor;
      break;
    case RopeScaling::Type::Llama3: {
      // Long wavelengths are slowed by `factor`, short ones kept, the band
      // between interpolated smoothly (HF _compute_llama3_parameters).
      const double old_len = rs.original_max_position;
      const double low_freq_wavelen = old_len / rs.low_freq_factor;
      const double high_freq_wavelen = old_len / rs.high_freq_factor;
      for (double& f : inv) {
        const double wavelen = 2.0 * std::numbers::pi / f;
        if (wavelen > low_freq_wavelen) {
          f /= rs.factor;
        } else if (wavelen >= high_freq_wavelen) {
          const double smooth = (old_len / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
          f = (1.0 - smooth) * f / rs.factor + smooth * f;
        }
      }
      break;
    }
  }
  return inv;
}

RopeTables make_rope_tables(const ModelConfig& config, int seqlen) {
  AMLQ_ASSERT(seqlen > 0, "seqlen {}", seqlen);
  const std::vector<double> inv = rope_inverse_frequencies(config);
  const int half = static_cast<int>(inv.size());
  RopeTables t;
  t.cos.resize(seqlen, half);
  t.sin.resize(seqlen, half);
  for (int p = 0; p < seqlen; ++p) {
    for (int i = 0; i < half; ++i) {
      const double angle = p * inv[i];
      t.cos(p, i) = static_cast<float>(std::cos(angle));
      t.sin(p, i) = static_cast<float>(std::sin(angle));
    }
  }
  return t;
}

}  // namespace amlq
