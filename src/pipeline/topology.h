#pragma once
// Who does what in a distributed run (METHOD.md 8, docs/DISTRIBUTED.md).
// world = replicas x stages ranks; rank = replica * stages + stage. Stage s of
// every replica owns the same contiguous block of decoder layers; replicas
// split the calibration samples and, later, the measurement and packing work.
#include <string>
#include <vector>

#include "io/model_config.h"

namespace amlq {

struct LayerBlock {
  int first = 0;  // decoder layers [first, end)
  int end = 0;
  int size() const { return end - first; }
};

struct Topology {
  int world_rank = 0;
  int world_size = 1;
  int replicas = 1;
  int stages = 1;
  int replica = 0;
  int stage = 0;
  std::vector<LayerBlock> stage_layers;  // per stage

  LayerBlock my_layers() const { return stage_layers[static_cast<size_t>(stage)]; }
  int rank_of(int replica_index, int stage_index) const { return replica_index * stages + stage_index; }
  bool first_stage() const { return stage == 0; }
  bool last_stage() const { return stage == stages - 1; }
  int stage_of_layer(int layer) const;
};

// Contiguous blocks minimizing the largest stage's parameter count, where stage
// 0 also carries the embedding and the last stage the final norm and lm_head.
// layers_per_rank > 0 overrides: blocks of that many layers (the last one takes
// the rest); it must yield exactly `stages` non-empty blocks.
std::vector<LayerBlock> balance_layers(const ModelConfig& config, int stages, int layers_per_rank);

// Throws Usage when world_size is not a multiple of replicas, or there are more
// stages than decoder layers.
Topology make_topology(const ModelConfig& config, int world_rank, int world_size, int replicas, int layers_per_rank);
// The same layout seen from another rank (no second balance_layers).
Topology topology_of_rank(const Topology& layout, int world_rank);

// Samples [first, end) of replica r when `samples` are split evenly.
struct SampleShare {
  int first = 0;
  int end = 0;
  int size() const { return end - first; }
};
// Each replica's share must be a whole number of batches and accumulation
// blocks, so that every GEMM and every Hessian addition is the same as in a
// one-rank run (results do not depend on the rank count). Throws Usage otherwise.
SampleShare replica_samples(int samples, int replicas, int replica, int batch, int samples_per_block);

// Linear j of a stage (in layer, then decoder_linears order) is measured and
// packed by replica j % replicas.
inline int owner_replica(int linear_index_in_stage, int replicas) { return linear_index_in_stage % replicas; }

}  // namespace amlq
