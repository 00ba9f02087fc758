// amlq quantize and its stages (issue 5).
#include "launch/commands.h"

namespace amlq::cli {
void add_quantize_commands(CLI::App& app, const GlobalOptions& global, Runner& run) {
  app.add_subcommand("quantize", "Calibrate, measure, search, pack and report in one run");
  app.add_subcommand("calibrate", "Stage 1: per-layer Hessians and activation scales");
  app.add_subcommand("measure", "Stage 2: error of every candidate configuration per layer");
  app.add_subcommand("search", "Stage 3: choose one configuration per layer under the bit budget");
  app.add_subcommand("pack", "Stage 4: quantize with the chosen plan and write the HDF5 model");
}
}  // namespace amlq::cli
