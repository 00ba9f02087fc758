#pragma once
// The stages of `amlq quantize` as functions of their inputs, each usable on
// its own (the stage subcommands) and over a block of layers (MPI ranks).
//   calibrate: model + samples        -> per-layer Hessians and activation scales
//   measure:   weights + statistics   -> (bpw, eps) of every candidate per linear
//   search:    table + target          -> one candidate per linear (search/search.h)
//   pack:      weights + stats + plan  -> packed linears + passthrough tensors
#include <string>
#include <vector>

#include "backend/backend.h"
#include "io/hdf5/quantized_model.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "pipeline/calibration_stats.h"
#include "pipeline/quantize_options.h"
#include "search/measurement.h"
#include "search/recipe_space.h"
#include "search/search.h"

namespace amlq {

struct ModelWeights;

// A contiguous block of decoder layers [first, end).
struct LayerRange {
  int first = 0;
  int end = 0;
  int size() const { return end - first; }
};

// Runs the samples through the layers `weights` holds (its embedding must be
// present when weights.first_layer == 0), one layer at a time, collecting the
// statistics of every linear input. With options.sequential each layer is
// quantized (options.sequential_spec) before its outputs feed the next layer.
// `hidden` holds the first layer's inputs ((samples*seqlen) x hidden) and on
// return the last layer's outputs.
std::vector<LayerCalibration> calibrate_layers(Backend& backend, const QuantizeOptions& options,
                                               ModelWeights& weights, MatrixF& hidden, int num_samples,
                                               int64_t first_sample);

// Quantizes one linear at one spec, then derives the error of every rank from
// one decomposition. Appends one Candidate per rank (ranks above min(rows, cols)
// are skipped).
void measure_linear(Backend& backend, const QuantizeOptions& options, const std::string& name, const MatrixF& w,
                    const SiteStatistics& stats, const QuantSpec& spec, const std::vector<int>& ranks,
                    std::vector<Candidate>& out);

// The measurement table rows of the linears in `layers` (table order: layer,
// then decoder_linears order). Logs one progress line per (linear, spec).
MeasurementTable measure_layers(Backend& backend, const QuantizeOptions& options, const ModelConfig& config,
                                const Checkpoint& checkpoint, const CalibrationStats& stats, const RecipeSpace& space,
                                LayerRange layers);

// Quantizes one linear with its chosen candidate and packs it, factors included;
// eps is recomputed on the stored (rounded) result.
PackedLinear pack_linear_choice(Backend& backend, const QuantizeOptions& options, const std::string& name,
                                const MatrixF& w, const VectorF& bias, const SiteStatistics& stats,
                                const Candidate& choice);

// Packed linears for `layers`, given the table (all layers) and the search result.
std::vector<PackedLinear> pack_layers(Backend& backend, const QuantizeOptions& options, const ModelConfig& config,
                                      const Checkpoint& checkpoint, const CalibrationStats& stats,
                                      const MeasurementTable& table, const SearchResult& plan, LayerRange layers);

// Every checkpoint tensor that is not a quantized linear's weight or bias
// (embedding, norms, lm_head), in its source dtype.
std::vector<PassthroughTensor> passthrough_tensors(const Checkpoint& checkpoint, const ModelConfig& config);

// "model.layers.3.mlp.down_proj"
std::string linear_name(int layer, const std::string& linear);

}  // namespace amlq
