#include "pipeline/topology.h"

#include <algorithm>
#include <limits>
#include <numeric>

#include "core/error.h"

namespace amlq {

int Topology::stage_of_layer(int layer) const {
  for (int s = 0; s < stages; ++s)
    if (layer >= stage_layers[static_cast<size_t>(s)].first && layer < stage_layers[static_cast<size_t>(s)].end)
      return s;
  AMLQ_FAIL(Internal, "layer {} belongs to no stage", layer);
}

std::vector<LayerBlock> balance_layers(const ModelConfig& config, int stages, int layers_per_rank) {
  const int layers = config.num_layers;
  if (stages > layers)
    AMLQ_FAIL(Usage, "{} pipeline stages for {} decoder layers: use fewer ranks or more --replicas", stages, layers);
  std::vector<LayerBlock> blocks;
  if (layers_per_rank > 0) {
    for (int s = 0; s < stages; ++s) {
      const int first = s * layers_per_rank;
      const int end = s == stages - 1 ? layers : std::min(layers, first + layers_per_rank);
      if (first >= end)
        AMLQ_FAIL(Usage, "--layers-per-rank {} leaves stage {} of {} without layers ({} layers)", layers_per_rank, s,
                  stages, layers);
      blocks.push_back({first, end});
    }
    return blocks;
  }
  const ParameterCount p = count_parameters(config);
  const int64_t per_layer = p.per_layer_linear + p.per_layer_other;
  const int64_t head = p.final_norm + (p.lm_head ? p.lm_head : 0);
  // cost of stage [a, b) as stage s
  auto cost = [&](int a, int b, int s) {
    int64_t c = per_layer * (b - a);
    if (s == 0) c += p.embedding;
    if (s == stages - 1) c += head;
    return c;
  };
  // best[s][i]: minimal bottleneck splitting layers [0, i) into stages 0..s-1 (each non-empty).
  const int64_t inf = std::numeric_limits<int64_t>::max();
  std::vector<std::vector<int64_t>> best(static_cast<size_t>(stages + 1), std::vector<int64_t>(static_cast<size_t>(layers + 1), inf));
  std::vector<std::vector<int>> cut(best.size(), std::vector<int>(static_cast<size_t>(layers + 1), 0));
  best[0][0] = 0;
  for (int s = 1; s <= stages; ++s)
    for (int i = s; i <= layers - (stages - s); ++i)
      for (int j = s - 1; j < i; ++j) {
        if (best[s - 1][j] == inf) continue;
        const int64_t b = std::max(best[s - 1][j], cost(j, i, s - 1));
        // Ties go to the earlier cut: later stages get the extra layers, as the head is usually there too.
        if (b < best[s][i]) {
          best[s][i] = b;
          cut[s][i] = j;
        }
      }
  blocks.resize(static_cast<size_t>(stages));
  int end = layers;
  for (int s = stages; s >= 1; --s) {
    const int first = cut[s][end];
    blocks[static_cast<size_t>(s - 1)] = {first, end};
    end = first;
  }
  return blocks;
}

Topology make_topology(const ModelConfig& config, int world_rank, int world_size, int replicas, int layers_per_rank) {
  if (replicas < 1) AMLQ_FAIL(Usage, "--replicas must be >= 1, got {}", replicas);
  if (world_size % replicas != 0)
    AMLQ_FAIL(Usage, "{} ranks cannot form {} replicas (ranks = replicas x pipeline stages)", world_size, replicas);
  Topology t;
  t.world_size = world_size;
  t.replicas = replicas;
  t.stages = world_size / replicas;
  t.stage_layers = balance_layers(config, t.stages, layers_per_rank);
  return topology_of_rank(t, world_rank);
}

Topology topology_of_rank(const Topology& layout, int world_rank) {
  AMLQ_ASSERT(world_rank >= 0 && world_rank < layout.world_size, "rank {} of {}", world_rank, layout.world_size);
  Topology t = layout;
  t.world_rank = world_rank;
  t.replica = world_rank / t.stages;
  t.stage = world_rank % t.stages;
  return t;
}

SampleShare replica_samples(int samples, int replicas, int replica, int batch, int samples_per_block) {
  if (replicas == 1) return {0, samples};
  const int unit = std::lcm(batch, samples_per_block);
  if (samples % (replicas * unit) != 0)
    AMLQ_FAIL(Usage,
              "{} calibration samples do not split into {} replicas of whole batches ({}) and Hessian blocks ({}): "
              "use a multiple of {} samples",
              samples, replicas, batch, samples_per_block, replicas * unit);
  const int share = samples / replicas;
  return {replica * share, (replica + 1) * share};
}

}  // namespace amlq
