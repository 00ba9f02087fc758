#include <string>

#include "launch/commands.h"

namespace amlq::cli {

void build_app(CLI::App& app, GlobalOptions& global, Runner& run) {
  app.description("amlq: GPTQ + low-rank error reconstruction + mixed-precision search for Llama-family models");
  app.set_version_flag("--version", std::string("amlq ") + AMLQ_VERSION);
  app.set_config("--config", "", "Read options from a TOML file (see configs/)");
  app.require_subcommand(1);
  app.fallthrough();
  app.add_option("--log-level", global.log_level, "trace, debug, info, warn, error, off")->capture_default_str();
  app.add_option("--backend", global.backend, "Compute backend: cpu, cuda or auto")->capture_default_str();
  app.add_option("--threads", global.threads, "Worker threads per rank (0: all cores)")->capture_default_str();
  add_inspect_command(app, global, run);
  add_layer_command(app, global, run);
  add_eval_commands(app, global, run);
  add_tokenize_command(app, global, run);
  add_quantize_commands(app, global, run);
  add_export_command(app, global, run);
  add_plan_command(app, global, run);
}

}  // namespace amlq::cli
