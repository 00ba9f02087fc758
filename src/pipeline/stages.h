#pragma once
// The stages of `amlq quantize` as functions of their inputs, each usable on
// its own (the stage subcommands) and over a block of layers (MPI ranks).
//   calibrate: model + samples        -> per-layer Hessians and activation scales
//   measure:   weights + statistics   -> (bpw, eps) of every candidate per linear
//   search:    table + target          -> one candidate per linear (search/search.h)
//   pack:      weights + stats + plan  -> packed linears + passthrough tensors
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

// Runs this rank's calibration samples through the layers `weights` holds (a
// pipeline stage): the first stage embeds, the others receive hidden states from
// the previous stage, and all but the last send theirs on. Statistics of every
// linear input are merged across replicas (`stage_replicas`). With
// options.sequential each layer is quantized (options.sequential_spec) before
// its outputs feed the next layer.
std::vector<LayerCalibration> calibrate_stage(Backend& backend, const QuantizeOptions& options, const Topology& topo,
                                              const Communicator& world, const Communicator& stage_replicas,
                                              ModelWeights& weights, const std::vector<std::vector<int32_t>>& samples,
                                              int64_t first_sample);

// Quantizes one linear at one spec, then derives the error of every rank from
// one decomposition. Appends one Candidate per rank (ranks above min(rows, cols)
// are skipped).
// weight_norm_h: tr(W H W^T), the normalizer shared by all of the linear's candidates.
void measure_linear(Backend& backend, const QuantizeOptions& options, const std::string& name, const MatrixF& w,
                    const SiteStatistics& stats, double weight_norm_h, const QuantSpec& spec,
                    const std::vector<int>& ranks, std::vector<Candidate>& out);

// Measurement rows for `tasks`, in task order, computed on options.threads
// threads. Logs one progress line per linear.
MeasurementTable measure_linears(Backend& backend, const QuantizeOptions& options, const ModelConfig& config,
                                 const Checkpoint& checkpoint, const CalibrationStats& stats,
                                 const RecipeSpace& space, const std::vector<LinearTask>& tasks);

// Quantizes one linear with its chosen candidate and packs it, factors included;
// eps is recomputed on the stored (rounded) result.
PackedLinear pack_linear_choice(Backend& backend, const QuantizeOptions& options, const std::string& name,
                                const MatrixF& w, const VectorF& bias, const SiteStatistics& stats,
                                const Candidate& choice);

// Packed linears for `tasks` with their chosen candidates (same order).
std::vector<PackedLinear> pack_linears(Backend& backend, const QuantizeOptions& options, const ModelConfig& config,
                                       const Checkpoint& checkpoint, const CalibrationStats& stats,
                                       const std::vector<LinearTask>& tasks, const std::vector<Candidate>& choices);

// Every checkpoint tensor that is not a quantized linear's weight or bias
// (embedding, norms, lm_head), in its source dtype.
// Names in checkpoint order; `wanted` selects whose data is read (a rank reads only its own).
std::vector<std::string> passthrough_names(const Checkpoint& checkpoint, const ModelConfig& config);
std::vector<PassthroughTensor> passthrough_tensors(const Checkpoint& checkpoint, const ModelConfig& config,
                                                   const std::function<bool(const std::string&)>& wanted);

const LayerCalibration& layer_statistics(const CalibrationStats& stats, int layer);
MatrixF read_linear_weight(const Checkpoint& checkpoint, const LinearSpec& spec, int layer);

}  // namespace amlq
