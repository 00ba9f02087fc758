#include "pipeline/memory_turns.h"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <limits>

#include <fmt/ranges.h>

#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"

namespace amlq {
namespace {

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

MemoryTurns::MemoryTurns(const Communicator& world, const Communicator& node, int stage, bool enabled) {
  // Every node-local rank takes part, enabled or not, so that the collective matches.
  const auto ranks = node.allgather_sizes(world.rank());
  const auto stages = node.allgather_sizes(stage);
  const auto flags = node.allgather_sizes(enabled ? 1 : 0);
  AMLQ_ASSERT(std::all_of(flags.begin(), flags.end(), [&](int64_t f) { return f == flags.front(); }),
              "the ranks of one host disagree on --memory-turns");
  if (!enabled) return;
  world_ = &world;
  int64_t prev = std::numeric_limits<int64_t>::min(), next = std::numeric_limits<int64_t>::max();
  for (int64_t s : stages) {
    if (s < stage) prev = std::max(prev, s);
    if (s > stage) next = std::min(next, s);
  }
  for (size_t i = 0; i < ranks.size(); ++i) {
    if (stages[i] == prev) before_.push_back(static_cast<int>(ranks[i]));
    if (stages[i] == next) after_.push_back(static_cast<int>(ranks[i]));
  }
}

void MemoryTurns::wait(int tag) {
  if (!enabled()) return;
  Timer timer;
  if (!before_.empty())
    AMLQ_LOG_INFO("memory turn: waiting for rank(s) {} on this host to finish their statistics walk",
                  fmt::join(before_, ", "));
  std::byte token{0};
  for (int r : before_) world_->recv(std::span(&token, 1), r, tag);
  if (!before_.empty()) {
    AMLQ_LOG_INFO("memory turn: waited {:.1f}s; this rank's walk starts", timer.seconds());
    waited_ += timer.seconds();
  }
  started_ = unix_seconds();
}

void MemoryTurns::done(int tag) {
  if (!enabled()) return;
  ended_ = unix_seconds();
  const std::byte token{1};
  for (int r : after_) world_->send(std::span(&token, 1), r, tag);
}

}  // namespace amlq
