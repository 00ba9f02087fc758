#pragma once
// The measurement table: for every quantized linear, the (bpw, eps) of every
// candidate configuration (METHOD.md 7). Produced by the measure stage, consumed
// by the search, stored in the HDF5 model and the stage checkpoint.
#include <cstdint>
#include <string>
#include <vector>

#include "lowrank/lowrank_types.h"
#include "quant/quant_spec.h"

namespace amlq {

struct Candidate {
  QuantSpec spec;
  int rank = 0;  // low-rank correction rank (0 = none)
  double bpw = 0;
  double eps = 0;  // normalized output error, METHOD.md 4
  // Standard error of eps when it was estimated on a sample of the output rows
  // (--measure-rows < 1); 0 when every row was measured.
  double eps_stderr = 0;
  bool operator==(const Candidate&) const = default;
};

struct LayerMeasurement {
  std::string name;   // "model.layers.3.mlp.down_proj"
  int rows = 0;
  int cols = 0;
  int64_t numel() const { return static_cast<int64_t>(rows) * cols; }
  std::vector<Candidate> candidates;
  // Loss sensitivity (METHOD.md 7, "loss-weighted min-sum"): the increase of the
  // model's mean token NLL per unit of this linear's eps, from noise probes
  // (pipeline/sensitivity.h). 0 when it was not measured.
  double alpha = 0;
  // The probes' slope at the larger noise energy over the slope at the smaller:
  // 1 when the loss is linear in eps over that range. 0 when not measured.
  double alpha_linearity = 0;
  bool operator==(const LayerMeasurement&) const = default;
};

using MeasurementTable = std::vector<LayerMeasurement>;

}  // namespace amlq
