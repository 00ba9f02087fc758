// amlq inspect MODEL_DIR|FILE.h5: architecture, layers, parameter counts, dtypes
// (for a GPTQ checkpoint directory: its quantization settings per linear).
#include <fmt/format.h>

#include <filesystem>
#include <map>

#include "core/error.h"
#include "core/format.h"
#include "export/gptq_reader.h"
#include "io/hdf5/model_summary.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "launch/commands.h"

namespace amlq::cli {
namespace {

void inspect_checkpoint(const std::string& path) {
  const ModelConfig config = load_model_config(path);
  const Checkpoint ckpt = Checkpoint::open(path);
  const ParameterCount params = count_parameters(config);
  const auto linears = decoder_linears(config);

  fmt::print("model        {}\n", path);
  fmt::print("architecture {} (hidden {}, intermediate {}, heads {}/{} kv, head_dim {}, vocab {})\n",
             arch_name(config.arch), config.hidden_size, config.intermediate_size, config.num_heads,
             config.num_kv_heads, config.head_dim, config.vocab_size);
  fmt::print("rope         theta {}, scaling {}, tied embeddings: {}\n", config.rope_theta,
             config.rope_scaling.type == RopeScaling::Type::None     ? "none"
             : config.rope_scaling.type == RopeScaling::Type::Linear ? "linear"
                                                                      : "llama3",
             config.tie_word_embeddings ? "yes" : "no");
  fmt::print("layers       {} decoder layers x {} linears\n\n", config.num_layers, linears.size());

  fmt::print("{:<20} {:>7} {:>7} {:>10}  {}\n", "linear", "rows", "cols", "params", "input");
  for (const auto& l : linears)
    fmt::print("{:<20} {:>7} {:>7} {:>10}  {}\n", l.name, l.rows, l.cols, with_commas(l.numel()),
               input_site_name(l.input));

  // Every tensor the architecture needs must be present with the right shape.
  std::map<std::string, int64_t> dtype_params;
  int64_t checkpoint_params = 0;
  for (const auto& name : ckpt.names()) {
    const auto& info = ckpt.info(name);
    dtype_params[std::string(dtype_name(info.dtype))] += info.numel();
    checkpoint_params += info.numel();
  }
  for (int layer = 0; layer < config.num_layers; ++layer) {
    for (const auto& l : linears) {
      const auto name = linear_weight_name(layer, l.name);
      if (!ckpt.has(name)) AMLQ_FAIL(Input, "{}: tensor '{}' is missing", path, name);
      const auto& shape = ckpt.info(name).shape;
      if (shape.size() != 2 || shape[0] != l.rows || shape[1] != l.cols)
        AMLQ_FAIL(Input, "{}: tensor '{}' has shape [{}], config.json implies [{}, {}]", ckpt.file_of(name), name,
                  fmt::join(shape, ", "), l.rows, l.cols);
    }
  }

  fmt::print("\nparameters   {} total: embedding {}, decoder layers {} x {}, final norm {}, lm_head {}\n",
             with_commas(params.total()), with_commas(params.embedding), config.num_layers,
             with_commas(params.per_layer_linear + params.per_layer_other), with_commas(params.final_norm),
             params.lm_head ? with_commas(params.lm_head) : std::string("tied"));
  fmt::print("quantizable  {} in {} linears\n", with_commas(params.quantized()),
             config.num_layers * static_cast<int>(linears.size()));
  std::string dtypes;
  for (const auto& [d, n] : dtype_params) dtypes += fmt::format("{}{} {}", dtypes.empty() ? "" : ", ", d, with_commas(n));
  fmt::print("checkpoint   {} tensors, {} parameters ({})\n", ckpt.names().size(), with_commas(checkpoint_params),
             dtypes);
}

}  // namespace

void add_inspect_command(CLI::App& app, const GlobalOptions& global, Runner& run) {
  auto* cmd = app.add_subcommand("inspect", "Show a model's architecture, layers, parameter counts and dtypes");
  auto path = std::make_shared<std::string>();
  cmd->add_option("model", *path, "Model directory (plain or GPTQ checkpoint) or an amlq .h5 file")->required();
  cmd->callback([&run, path] {
    run = [path] {
      if (std::filesystem::path(*path).extension() == ".h5") {
        fmt::print("{}", summarize_quantized_model(*path));
        return;
      }
      if (checkpoint_kind(*path) == CheckpointKind::Gptq) {
        fmt::print("{}", summarize_gptq_checkpoint(*path));
        return;
      }
      inspect_checkpoint(*path);
    };
  });
}

}  // namespace amlq::cli
