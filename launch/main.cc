// amlq: post-training compression of Llama-family models (GPTQ + low-rank
// error reconstruction + mixed-precision search). See README.md.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "core/error.h"
#include "core/log.h"
#include "core/mpi_comm.h"
#include "launch/commands.h"

int main(int argc, char** argv) {
  using namespace amlq;
  MpiSession mpi(&argc, &argv);
  const auto world = Communicator::world();

  CLI::App app{"amlq: GPTQ + low-rank error reconstruction + mixed-precision search for Llama-family models"};
  app.set_version_flag("--version", std::string("amlq ") + AMLQ_VERSION);
  app.set_config("--config", "", "Read options from a TOML file (see configs/)");
  app.require_subcommand(1);
  app.fallthrough();
  cli::GlobalOptions global;
  app.add_option("--log-level", global.log_level, "trace, debug, info, warn, error, off")->capture_default_str();
  app.add_option("--backend", global.backend, "Compute backend: cpu, cuda or auto")->capture_default_str();

  cli::Runner run;
  cli::add_inspect_command(app, global, run);
  cli::add_layer_command(app, global, run);
  cli::add_eval_commands(app, global, run);
  cli::add_tokenize_command(app, global, run);
  cli::add_quantize_commands(app, global, run);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : exit_code(ErrorKind::Usage);
  }

  try {
    log::init(world.rank(), world.size(), log::parse_level(global.log_level));
    if (run) run();
  } catch (const Error& e) {
    std::fprintf(stderr, "amlq: %s: %s\n", std::string(error_kind_name(e.kind())).c_str(), e.what());
    AMLQ_LOG_DEBUG("raised at {}", e.origin());
    return exit_code(e.kind());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "amlq: internal error: %s\n", e.what());
    return exit_code(ErrorKind::Internal);
  }
  return 0;
}
