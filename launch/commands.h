#pragma once
// Each subcommand lives in its own cmd_*.cc and registers itself on the app.
#include <CLI/CLI.hpp>

#include <functional>
#include <string>

namespace amlq::cli {

// Options every subcommand shares (set before the subcommand runs).
struct GlobalOptions {
  std::string log_level = "info";
  std::string backend = "cpu";
  int threads = 0;  // worker threads per rank (0: all cores); amlq-launch sets it per rank
};

// Subcommands register a callback; main runs it inside the error handler.
using Runner = std::function<void()>;

// The whole command line: description, --version, --config (TOML), the global
// options and every subcommand (app.cc). Parsing runs nothing but sets `run`.
void build_app(CLI::App& app, GlobalOptions& global, Runner& run);
void add_inspect_command(CLI::App& app, const GlobalOptions& global, Runner& run);
void add_layer_command(CLI::App& app, const GlobalOptions& global, Runner& run);
void add_eval_commands(CLI::App& app, const GlobalOptions& global, Runner& run);      // eval, generate
void add_tokenize_command(CLI::App& app, const GlobalOptions& global, Runner& run);
void add_quantize_commands(CLI::App& app, const GlobalOptions& global, Runner& run);  // quantize + stages
void add_export_command(CLI::App& app, const GlobalOptions& global, Runner& run);
void add_plan_command(CLI::App& app, const GlobalOptions& global, Runner& run);

// Checks a --validate-plans list at parse time (search/search.h).
CLI::Validator validated_plans_check();

}  // namespace amlq::cli
