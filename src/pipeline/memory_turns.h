#pragma once
// Memory turns: the ranks sharing a host hold their statistics one pipeline
// stage at a time (docs/DISTRIBUTED.md, "Memory turns").
//
// A rank's peak is the statistics of one decoder layer plus one site's measure
// or pack working set: for Llama-2-70B that is ~18 GB, dominated by the
// 28672-wide down_proj Hessian and its factor. Two such ranks do not fit a
// 24 GiB host, yet each alone does. With turns on, the node-local ranks of
// stage s start a pass's statistics walk only once every node-local rank of
// the nearest lower stage on the host has finished its own walk of that pass,
// so the host holds one stage's peak plus the others' inputs. Nothing is
// computed differently: outputs are bit-identical with turns on or off.
//
// Why stages and not ranks: the replicas of a stage exchange statistics
// (collectives) during their walk, so they must hold the turn together. Why
// this order cannot deadlock: inside its walk a stage only waits on its own
// replicas and on lower stages (the inputs it received before waiting), and a
// rank always receives its inputs before it asks for its turn.
#include <vector>

#include "core/mpi_comm.h"

namespace amlq {

class MemoryTurns {
 public:
  MemoryTurns() = default;  // off: wait() and done() return at once
  // Collective over `node` (the ranks of this host, Communicator::split_node_local):
  // each rank gives its world rank and stage. `world` carries the turn messages
  // (so a failure notice interrupts a wait) and must outlive this object.
  MemoryTurns(const Communicator& world, const Communicator& node, int stage, bool enabled);

  bool enabled() const { return world_ != nullptr; }
  // Blocks until every node-local rank of the previous stage group has called
  // done(tag). `tag` tells passes apart and must be the same on every rank.
  void wait(int tag);
  void done(int tag);

  // Seconds spent in wait(), and the wall-clock times (Unix seconds) at which
  // this rank's last turn started and ended (for the report and the tests).
  double waited_seconds() const { return waited_; }
  double turn_started() const { return started_; }
  double turn_ended() const { return ended_; }
  // The world ranks whose turn comes right before and after this rank's.
  const std::vector<int>& before() const { return before_; }
  const std::vector<int>& after() const { return after_; }

 private:
  const Communicator* world_ = nullptr;
  std::vector<int> before_, after_;
  double waited_ = 0, started_ = 0, ended_ = 0;
};

}  // namespace amlq
