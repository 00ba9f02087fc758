// amlq layer: quantize one matrix with one configuration (issue 3).
#include "launch/commands.h"

namespace amlq::cli {
void add_layer_command(CLI::App& app, const GlobalOptions& global, Runner& run) {
  app.add_subcommand("layer", "Quantize one weight matrix with one configuration and print eps, bpw, time");
}
}  // namespace amlq::cli
