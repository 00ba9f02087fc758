#pragma once
// Logging: every line carries time, level and the MPI rank that wrote it.
//   AMLQ_LOG_INFO("[{}/{}] {} {}b g{} eps={:.2e}", i, n, name, bits, group, eps);
#include <spdlog/spdlog.h>

#include <string_view>

namespace amlq::log {

enum class Level { Trace, Debug, Info, Warn, Error, Off };

// Call once per process after the rank is known (the CLI does it).
void init(int rank, int world_size, Level level);
void set_level(Level level);
Level parse_level(std::string_view name);  // "trace".."off"; throws Usage on others
int rank();

}  // namespace amlq::log

#define AMLQ_LOG_TRACE(...) SPDLOG_TRACE(__VA_ARGS__)
#define AMLQ_LOG_DEBUG(...) ::spdlog::debug(__VA_ARGS__)
#define AMLQ_LOG_INFO(...) ::spdlog::info(__VA_ARGS__)
#define AMLQ_LOG_WARN(...) ::spdlog::warn(__VA_ARGS__)
#define AMLQ_LOG_ERROR(...) ::spdlog::error(__VA_ARGS__)
