#include "core/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include "core/error.h"

namespace amlq::log {
namespace {
int g_rank = 0;

spdlog::level::level_enum to_spdlog(Level level) {
  switch (level) {
    case Level::Trace: return spdlog::level::trace;
    case Level::Debug: return spdlog::level::debug;
    case Level::Info: return spdlog::level::info;
    case Level::Warn: return spdlog::level::warn;
    case Level::Error: return spdlog::level::err;
    case Level::Off: return spdlog::level::off;
  }
  return spdlog::level::info;
}
}  // namespace

void init(int rank, int world_size, Level level) {
  g_rank = rank;
  // Logs go to stderr so that stdout carries only results (tables, JSON).
  auto logger = spdlog::stderr_color_mt("amlq");
  const int width = world_size > 1 ? static_cast<int>(std::to_string(world_size - 1).size()) : 1;
  logger->set_pattern(fmt::format("[%H:%M:%S] [r{:0{}}] [%^%l%$] %v", rank, width));
  spdlog::set_default_logger(logger);
  set_level(level);
}

void set_level(Level level) { spdlog::set_level(to_spdlog(level)); }

Level parse_level(std::string_view name) {
  if (name == "trace") return Level::Trace;
  if (name == "debug") return Level::Debug;
  if (name == "info") return Level::Info;
  if (name == "warn" || name == "warning") return Level::Warn;
  if (name == "error") return Level::Error;
  if (name == "off") return Level::Off;
  AMLQ_FAIL(Usage, "unknown log level '{}' (use trace, debug, info, warn, error, off)", name);
}

int rank() { return g_rank; }

}  // namespace amlq::log
