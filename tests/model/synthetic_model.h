#pragma once
// A small random Llama-family model (GQA, q/k/v bias as in qwen2, llama3 RoPE
// scaling) for consistency tests, and writing it as a checkpoint directory.
#include <cstdint>
#include <string>

#include "model/model_weights.h"

namespace amlq::test {

// hidden 32, intermediate 48, 4 heads / 2 kv heads of 8, vocab 64, `layers` layers.
ModelConfig synthetic_config(int layers = 2);
ModelWeights synthetic_weights(const ModelConfig& config, uint64_t seed);
// config.json + model.safetensors into dir.
void write_checkpoint(const ModelWeights& weights, const std::string& dir);

}  // namespace amlq::test
