// amlq: post-training compression of Llama-family models (GPTQ + low-rank
// error reconstruction + mixed-precision search). See README.md.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <exception>

#include "core/error.h"
#include "core/log.h"
#include "core/mpi_comm.h"
#include "launch/commands.h"

namespace {

// One failure, one message, one exit code. With several ranks the message
// reaches rank 0 (a failure notice that its polling waits pick up), rank 0
// prints it and ends the whole job, since other ranks may sit in collective
// calls that cannot be interrupted; MPI_Abort is that last resort.
int fail(const amlq::Communicator& world, amlq::ErrorKind kind, const std::string& message, bool remote) {
  using namespace amlq;
  const std::string kind_name(error_kind_name(kind));
  if (world.size() == 1) {
    std::fprintf(stderr, "amlq: %s: %s\n", kind_name.c_str(), message.c_str());
    return exit_code(kind);
  }
  if (world.rank() == 0) {
    if (remote)
      std::fprintf(stderr, "amlq: %s on %s\n", kind_name.c_str(), message.c_str());
    else
      std::fprintf(stderr, "amlq: %s on rank 0: %s\n", kind_name.c_str(), message.c_str());
    std::fflush(stderr);
    MpiSession::abort(exit_code(kind));
  }
  if (!remote) world.notify_failure(kind, message);
  // Rank 0 ends the job as soon as it sees the notice; if it never does (it is
  // itself stuck or dead), say it here and end the job from this rank.
  for (int i = 0; i < 300; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::fprintf(stderr, "amlq: %s on rank %d: %s\n", kind_name.c_str(), world.rank(), message.c_str());
  std::fflush(stderr);
  MpiSession::abort(exit_code(kind));
}

}  // namespace

int main(int argc, char** argv) {
  using namespace amlq;
  MpiSession mpi(&argc, &argv);
  const auto world = Communicator::world();

  CLI::App app;
  cli::GlobalOptions global;
  cli::Runner run;
  cli::build_app(app, global, run);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : exit_code(ErrorKind::Usage);
  }

  try {
    // Progress comes from rank 0; other ranks speak up only for warnings unless asked.
    auto level = log::parse_level(global.log_level);
    if (world.rank() != 0 && app.get_option("--log-level")->count() == 0) level = log::Level::Warn;
    log::init(world.rank(), world.size(), level);
    AMLQ_LOG_DEBUG("amlq {} on {} rank(s)", AMLQ_VERSION, world.size());
    if (run) run();
  } catch (const Error& e) {
    AMLQ_LOG_DEBUG("raised at {}", e.origin());
    return fail(world, e.kind(), e.what(), dynamic_cast<const RemoteFailure*>(&e) != nullptr);
  } catch (const std::exception& e) {
    return fail(world, ErrorKind::Internal, e.what(), false);
  }
  return 0;
}
