// amlq eval / generate (issue 4).
#include "launch/commands.h"

namespace amlq::cli {
void add_eval_commands(CLI::App& app, const GlobalOptions& global, Runner& run) {
  app.add_subcommand("eval", "Perplexity of a model (checkpoint or amlq .h5) on a dataset");
  app.add_subcommand("generate", "Greedy generation from a prompt (smoke test)");
}
}  // namespace amlq::cli
