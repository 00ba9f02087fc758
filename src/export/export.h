#pragma once
// `amlq export`: an amlq .h5 model as a Hugging Face checkpoint other tools load
// (docs/EXPORT.md).
//   dequant  config.json, tokenizer files, safetensors with W_hat + A B folded
//            into every linear, in f32, fp16 or bf16
//   gptq     the GPTQ layout (gptq_format.h) with quantize_config.json and
//            quantization_config (GPTQModel `dynamic` rules for layers that differ
//            from the default), the low-rank factors as a PEFT LoRA adapter in
//            lowrank-adapter/ (lowrank_adapter.h)
// Tensors are written one at a time into a temporary directory that is renamed
// into place at the end; shards of at most 5 GB with an index, as HF does.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "export/safetensors_shards.h"
#include "io/dtype.h"

namespace amlq {

enum class ExportFormat { Dequant, Gptq };
ExportFormat parse_export_format(std::string_view name);  // "dequant" | "gptq"; Usage error otherwise
DType parse_export_dtype(std::string_view name);          // "f32" | "fp16" | "bf16" (and torch spellings)

struct ExportOptions {
  std::string input;  // FILE.h5
  std::string out;    // DIR
  ExportFormat format = ExportFormat::Dequant;
  std::optional<DType> dtype;  // dequant: F32, F16 or BF16 (default: the source checkpoint's float dtype)
  std::string model;           // source model directory (tokenizer, --requantize); default: the file's source_model
  std::string calib;           // calibration data for --requantize; default: as recorded in the file
  bool requantize = false;     // gptq: re-run inexpressible layers at the nearest expressible configuration
  bool force = false;          // replace a non-empty DIR
  uint64_t max_shard_bytes = kDefaultMaxShardBytes;
};

struct RequantizedLayer {
  std::string name;
  std::string reason;        // why the stored configuration was inexpressible
  std::string from, to;      // spec labels
  int rank = 0;
  double eps_before = 0, eps_after = 0;
};

struct ExportSummary {
  std::string input;
  std::string out;
  std::string format;               // "dequant" or "gptq"
  std::string dtype;                // dequant: the tensor dtype
  std::vector<std::string> files;   // written, relative to out
  int64_t tensors = 0;
  uint64_t tensor_bytes = 0;
  int adapter_modules = 0;          // gptq: linears with factors in lowrank-adapter/
  std::vector<std::string> tokenizer_files;
  std::vector<RequantizedLayer> requantized;
  std::vector<std::string> warnings;  // also logged
};

// Runs the export. Errors: Input naming the file and layer (unreadable .h5,
// inexpressible layers without --requantize, missing sources for --requantize),
// Output (DIR exists and is not empty without --force, a write failed), Usage.
ExportSummary export_model(Backend& backend, const ExportOptions& options);

nlohmann::json export_summary_json(const ExportSummary& summary);
std::string export_summary_text(const ExportSummary& summary);

}  // namespace amlq
