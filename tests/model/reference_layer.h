#pragma once
// A deliberately plain float64 decoder layer (scalar loops, no Backend) that the
// optimized forward pass is checked against.
#include "model/forward.h"

namespace amlq::test {

struct ReferenceInputs {
  MatrixD attn_in, attn_out, mlp_in, mlp_out;
};

MatrixD reference_decoder_layer(const ModelConfig& config, const DecoderLayerWeights& layer, const MatrixD& hidden,
                                int batch, int seqlen, ReferenceInputs* inputs);

}  // namespace amlq::test
