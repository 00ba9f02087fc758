// A --config TOML file as amlq's command line reads it (CLI11's config parser on
// the real option set). A malformed file is a CLI::ParseError, which main reports
// as a usage error (exit 2) naming the problem.
#include <sstream>

#include "launch/commands.h"
#include "tests/fuzz/fuzz_target.h"

namespace amlq {

AMLQ_FUZZ_TARGET(cli_config, ErrorKind::Usage) {
  CLI::App app;
  cli::GlobalOptions global;
  cli::Runner run;
  cli::build_app(app, global, run);
  std::istringstream in{std::string(fuzz::text(input))};
  try {
    app.parse_from_stream(in);
  } catch (const CLI::ParseError&) {
    // The clean rejection: main prints it and exits with the usage code.
  }
}

}  // namespace amlq
