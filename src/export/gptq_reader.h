#pragma once
// Reading a GPTQ-format checkpoint directory (AutoGPTQ, GPTQModel, amlq's own
// `export --format gptq`) into amlq's model: each quantized linear becomes a
// PackedLinear (gptq_linear.h: permutation from g_idx, zero-minus-one undone),
// so `amlq eval` and `amlq inspect` treat a peer's GPTQ output like an amlq .h5.
// A PEFT LoRA adapter in DIR/lowrank-adapter/ adds its factors (A (B x)).
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model_weights.h"

namespace amlq {

enum class CheckpointKind { Plain, Gptq };

// What a model directory holds: a plain checkpoint, or GPTQ (config.json's
// quantization_config.quant_method "gptq", or a quantize_config.json). Another
// quantization method is an Input error naming the directory.
CheckpointKind checkpoint_kind(const std::string& dir);

// Settings of one module after GPTQModel's `dynamic` rules.
struct GptqModuleConfig {
  bool quantized = true;  // false: a "-:" rule leaves the module unquantized
  int bits = 4;
  int group_size = 128;   // -1: one group per row
  bool sym = true;
  bool desc_act = false;
};

struct GptqCheckpointConfig {
  std::string origin;      // the file the settings came from
  GptqModuleConfig base;   // bits, group_size, sym, desc_act
  std::string checkpoint_format = "gptq";
  int zero_offset = 1;
  std::vector<std::pair<std::string, nlohmann::json>> dynamic;  // rules in file order
  GptqModuleConfig module(const std::string& name) const;       // base + the first matching rule
};

// Reads quantization_config from config.json, else quantize_config.json; Input
// error naming the file for a method or layout amlq cannot read (quant_method
// not gptq, pack_dtype not int32, checkpoint_format other than gptq/gptq_v2).
GptqCheckpointConfig read_gptq_config(const std::string& dir);

// The whole model for evaluation. Input errors name the directory, tensor and layer.
// *adapter_modules receives the number of linears the adapter corrected (if non-null).
ModelWeights load_gptq_model_weights(const std::string& dir, int* adapter_modules = nullptr);

// `amlq inspect DIR`: settings, one row per linear (bits, group, act-order,
// symmetric, adapter rank, bpw by amlq's cost model) and totals.
std::string summarize_gptq_checkpoint(const std::string& dir);

}  // namespace amlq
