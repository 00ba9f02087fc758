#pragma once
// Rotary position embedding tables as Hugging Face computes them: inverse
// frequencies theta^(-2i/d), optionally rescaled (linear or llama3), then
// cos/sin of position * inv_freq for positions 0..seqlen-1.
#include <vector>

#include "core/matrix.h"
#include "io/model_config.h"

namespace amlq {

struct RopeTables {
  MatrixF cos;  // seqlen x head_dim/2
  MatrixF sin;
  int seqlen() const { return static_cast<int>(cos.rows()); }
};

// head_dim/2 inverse frequencies after the config's rope_scaling (in double).
std::vector<double> rope_inverse_frequencies(const ModelConfig& config);
RopeTables make_rope_tables(const ModelConfig& config, int seqlen);

}  // namespace amlq
