// amlq export FILE.h5 --format dequant|gptq --out DIR: the model as a Hugging
// Face checkpoint other tools load (docs/EXPORT.md).
#include <fmt/format.h>

#include <memory>

#include "backend/backend.h"
#include "export/export.h"
#include "launch/commands.h"

namespace amlq::cli {
namespace {

struct ExportCliOptions {
  ExportOptions job;
  std::string format = "dequant";
  std::string dtype;
  std::string max_shard_size = "5GB";
  bool json = false;
};

void run_export(const ExportCliOptions& o, const GlobalOptions& global) {
  ExportOptions job = o.job;
  job.format = parse_export_format(o.format);
  if (!o.dtype.empty()) job.dtype = parse_export_dtype(o.dtype);
  job.max_shard_bytes = parse_byte_size_option(o.max_shard_size);
  auto backend = make_backend(global.backend);
  const ExportSummary summary = export_model(*backend, job);
  if (o.json)
    fmt::print("{}\n", export_summary_json(summary).dump(2));
  else
    fmt::print("{}", export_summary_text(summary));
}

}  // namespace

void add_export_command(CLI::App& app, const GlobalOptions& global, Runner& run) {
  auto o = std::make_shared<ExportCliOptions>();
  auto* cmd = app.add_subcommand("export", "Write an amlq .h5 model as a Hugging Face checkpoint (dequant or gptq)");
  cmd->add_option("input", o->job.input, "The amlq .h5 model")->required();
  cmd->add_option("--out", o->job.out, "Output directory (written atomically)")->required();
  cmd->add_option("--format", o->format, "dequant: W_hat + A B as plain weights; gptq: GPTQ tensors + LoRA adapter")
      ->capture_default_str()
      ->check(CLI::IsMember({"dequant", "gptq"}));
  cmd->add_option("--dtype", o->dtype, "dequant: f32, fp16 or bf16 (default: the source checkpoint's dtype)");
  cmd->add_option("--model", o->job.model,
                  "Source model directory for the tokenizer files and --requantize (default: the one recorded in "
                  "the file)");
  cmd->add_option("--calib", o->job.calib, "Calibration data for --requantize (default: the one recorded in the file)");
  cmd->add_flag("--requantize", o->job.requantize,
                "gptq: re-run layers the format cannot express at the nearest expressible configuration");
  cmd->add_flag("--force", o->job.force, "Replace a non-empty output directory");
  cmd->add_option("--max-shard-size", o->max_shard_size, "Largest safetensors shard (e.g. 5GB, 500MB)")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "Print the summary as JSON");
  cmd->callback([&run, &global, o] { run = [&global, o] { run_export(*o, global); }; });
}

}  // namespace amlq::cli
