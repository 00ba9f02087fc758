#pragma once
// The two passes a quantize run makes over the decoder layers on every rank
// (docs/DISTRIBUTED.md, "Streaming layer by layer"):
//
//  measure pass: the stage's calibration inputs are obtained (FP forward of the
//    earlier stages, pipelined), then layer by layer: statistics of the layer's
//    four input sites (one forward over the rank's samples), merged across
//    replicas, every candidate of the layer's linears measured site by site,
//    the rows kept in measure/layer_NNNNN.json, the statistics freed.
//  pack pass: the same walk again once the plan is known, regenerating each
//    layer's statistics and quantizing it with its chosen candidates; with
//    sequential packing the statistics come from the outputs of the layers
//    already quantized (layer-sequential, or true-sequential inside the layer).
//    Each layer's packed linears go to pack/layer_NNNNN.h5, and the output file
//    is then assembled from those one linear at a time.
//
// A rank therefore holds: its weights as mmapped source tensors, one decoder
// layer in float32, its share of calibration activations, the statistics of ONE
// decoder layer, and one site's measure working set (pipeline/resources.h).
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/mpi_comm.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "model/model_weights.h"
#include "pipeline/memory_turns.h"
#include "pipeline/quantize_options.h"
#include "pipeline/topology.h"
#include "pipeline/work_dir.h"
#include "quant/packed_linear.h"
#include "search/measurement.h"
#include "search/recipe_space.h"
#include "search/search.h"

namespace amlq {

// Seconds spent, for the report (this rank).
struct PassTimes {
  double forward = 0;     // calibration forward passes incl. statistics
  double statistics = 0;  // merging statistics across replicas
  double measure = 0;
  double pack = 0;
  double write = 0;
};

struct PassContext {
  Backend& backend;
  const QuantizeOptions& options;
  const ModelConfig& config;
  const Checkpoint& checkpoint;
  const Topology& topo;
  const Communicator& world;
  const Communicator& stage_replicas;  // this stage's ranks, by replica index
  SampleShare share;                   // this replica's calibration samples (global indices)
  std::vector<std::vector<int32_t>> samples;  // their ids (first stage only)
  WorkDir work;
  PassTimes times;
  // Off unless the ranks of this host take turns on their statistics walks
  // (--memory-turns); each pass waits for its turn once its inputs are in.
  MemoryTurns turns;
};

// Which decoder layers already have a valid checkpoint (a flag per layer of the
// model). Each stage's replica 0 checks its own layers' files; every rank gets
// the same answer. `valid(layer)` is evaluated only there.
std::vector<char> agree_done_layers(const PassContext& ctx, const std::function<bool(int layer)>& valid);

// The measure pass. Layers flagged in `done` are not measured again (their
// forward still runs when a later layer needs its output). With
// `statistics_only` (`amlq calibrate`) the statistics are written to
// calib/layer_NNNNN.h5 instead of being measured. `layer_hash(layer)` is the
// input hash recorded in each layer's checkpoint. Returns, on replica 0 of each
// stage, the rows of every layer of the stage (from the checkpoints), else {}.
std::map<int, MeasurementTable> measure_pass(PassContext& ctx, const RecipeSpace& space,
                                             const std::function<std::string(int)>& layer_hash,
                                             const std::vector<char>& done, bool statistics_only);

// One plan the pack pass packs: its choices (as on rank 0), the work directory
// whose pack_layer() receives its layers, their input hashes, and which layers
// already have a valid checkpoint (a flag per layer of the model).
struct PackTarget {
  const SearchResult* plan = nullptr;
  WorkDir work;
  std::function<std::string(int)> layer_hash;
  std::vector<char> done;
};

// The pack pass: quantizes every not-done layer of this stage with each
// target's chosen candidates and writes its pack checkpoint. Several targets
// (plan validation, --sequential none only) share one walk: the statistics
// are computed once per layer, each site's factors once, and a (linear,
// candidate) two plans chose is quantized once.
void pack_pass(PassContext& ctx, const MeasurementTable& table, const std::vector<PackTarget>& targets);

// The packed linears of `layer` from its pack checkpoint (work.pack_layer), by
// index in decoder_linears order; Input error unless it holds all of them.
std::map<int, PackedLinear> read_pack_file(const WorkDir& work, const ModelConfig& config, int layer);
// The layer as the next layer sees it once `packed` linears replace their FP
// weights: W_hat + A B as dense float32 (bias unchanged).
void replace_with_packed(DecoderLayerWeights& weights, const std::map<int, PackedLinear>& packed);

// Reads a stage's measurement rows from its per-layer checkpoints (kind below).
inline constexpr const char* kMeasureLayerKind = "amlq-measure-layer";
inline constexpr const char* kPackLayerKind = "amlq-pack-layer";
inline constexpr const char* kCalibLayerKind = "amlq-calibration-layer";

}  // namespace amlq
