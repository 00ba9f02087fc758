#pragma once
// amlq's low-rank correction factors as a PEFT LoRA adapter, so PEFT and vLLM
// (--enable-lora) compute W_hat x + A (B x) on top of the quantized model:
//   adapter_config.json         peft_type LORA, r = lora_alpha = the largest rank,
//                               rank_pattern and alpha_pattern give every module
//                               alpha = r (scale alpha / r exactly 1), target_modules
//   adapter_model.safetensors   base_model.model.<module>.lora_A.weight = B [r, in]
//                               base_model.model.<module>.lora_B.weight = A [out, r]   (fp16)
// PEFT computes lora_B(lora_A(x)) * alpha / r per module; vLLM ignores the
// patterns and uses lora_alpha / r = 1 for all, with each module's rank from its
// tensors: both give A (B x).
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "quant/packed_linear.h"

namespace amlq {

inline constexpr std::string_view kAdapterDir = "lowrank-adapter";
inline constexpr std::string_view kAdapterConfigFile = "adapter_config.json";
inline constexpr std::string_view kAdapterWeightsFile = "adapter_model.safetensors";
inline constexpr std::string_view kPeftPrefix = "base_model.model.";

// PEFT's tensor names of one module.
std::string lora_a_name(const std::string& module);  // base_model.model.<module>.lora_A.weight
std::string lora_b_name(const std::string& module);  // base_model.model.<module>.lora_B.weight

// Writes the adapter of every layer with rank > 0 into `dir` (created).
// `layouts` lists every linear (name, shape, rank, factor format); `load(i)`
// returns linear i with its factors, called once per adapted module. int8
// factors are dequantized and rounded to fp16. Returns false (writing nothing)
// when no layer has factors.
bool write_lowrank_adapter(const std::string& dir, const std::vector<PackedLinear>& layouts,
                           const std::function<PackedLinear(size_t)>& load, const std::string& base_model);

// A PEFT LoRA adapter read back: per module, A (out x r) and B (r x in) as fp16
// bits with the module's scale folded into A.
struct AdapterFactors {
  int rank = 0;
  std::vector<uint16_t> a_fp16;  // out x rank
  std::vector<uint16_t> b_fp16;  // rank x in
};
struct LowRankAdapter {
  std::map<std::string, AdapterFactors> modules;  // by module name
  int inexact_modules = 0;  // modules whose factors (dtype, scale) were rounded to fp16
};

// Reads DIR/adapter_config.json + adapter_model.safetensors. `shapes` gives each
// linear's (out, in) by name; a module not in it, a shape mismatch, a non-LoRA
// or DoRA adapter, LoRA bias terms or a rank that disagrees with rank_pattern is
// an Input error naming the file and module.
LowRankAdapter read_lowrank_adapter(const std::string& dir, const std::map<std::string, std::pair<int, int>>& shapes);

}  // namespace amlq
