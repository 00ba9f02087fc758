// amlq tokenize (issue 4).
#include "launch/commands.h"

namespace amlq::cli {
void add_tokenize_command(CLI::App& app, const GlobalOptions& global, Runner& run) {
  app.add_subcommand("tokenize", "Tokenize a text file into ids (.u32) once for many runs");
}
}  // namespace amlq::cli
