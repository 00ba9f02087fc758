#pragma once
// The per-linear work of `amlq quantize`'s stages (the walk over layers and
// ranks is pipeline/layer_passes.h):
//   measure: weights + statistics   -> (bpw, eps) of every candidate per linear
//   search:  table + target          -> one candidate per linear (search/search.h)
//   pack:    weights + stats + plan  -> packed linears + passthrough tensors
#include <functional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/mpi_comm.h"
#include "io/hdf5/quantized_model.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "pipeline/calibration_stats.h"
#include "pipeline/quantize_options.h"
#include "pipeline/topology.h"
#include "search/measurement.h"
#include "search/recipe_space.h"
#include "search/search.h"

namespace amlq {

struct ModelWeights;

// One quantized linear: the unit of measure and pack work.
struct LinearTask {
  int layer = 0;
  int index = 0;     // in decoder_linears(config)
  std::string name;  // "model.layers.3.mlp.down_proj"
};
std::vector<LinearTask> linear_tasks(const ModelConfig& config, LayerBlock layers);

// Quantizes one linear with its chosen candidate and packs it, factors included;
// eps is recomputed on the stored (rounded) result. `factor` (optional): the
// site's factor from backend.factor_site(stats.hessian, choice.spec.act_order,
// options.gptq), shared with the site's other linears instead of factoring
// stats.hessian again; the result is the same.
PackedLinear pack_linear_choice(Backend& backend, const QuantizeOptions& options, const std::string& name,
                                const MatrixF& w, const VectorF& bias, const SiteStatistics& stats,
                                const Candidate& choice, const SiteFactor* factor = nullptr);

// Every checkpoint tensor that is not a quantized linear's weight or bias
// (embedding, norms, lm_head), in its source dtype.
// Names in checkpoint order; `wanted` selects whose data is read (a rank reads only its own).
std::vector<std::string> passthrough_names(const Checkpoint& checkpoint, const ModelConfig& config);
std::vector<PassthroughTensor> passthrough_tensors(const Checkpoint& checkpoint, const ModelConfig& config,
                                                   const std::function<bool(const std::string&)>& wanted);

MatrixF read_linear_weight(const Checkpoint& checkpoint, const LinearSpec& spec, int layer);

}  // namespace amlq
