#pragma once
// Seconds per stage of `amlq quantize`, per rank, predicted from config.json,
// the options and a table of operation rates (pipeline/op_rates.h), for
// `amlq plan`. Memory is not modelled here: pipeline/resources.h is the one
// memory model, shared with the run.
//
// Every charge follows the code that does the work:
//  calibrate  the measure pass's forward passes (pipeline/layer_passes.cc): on a
//             stage that feeds a next one, pass 0 (the FP forward of all its
//             layers, fp_stage_inputs), then the layer walk: one forward per
//             layer with the statistics of its four input sites
//             (HessianAccumulator: one backend call per sample and site), merged
//             across replicas.
//  measure    measure_site_linears (pipeline/measure_site.h): per site, the
//             damped Hessian factored once per column order and tr(W H W^T) per
//             linear, then per (linear, spec) on --threads workers
//             (lowrank/spec_errors.h): GPTQ's pass with the shared factor, the
//             error E from the codes, and its whitened form: exact, the fp64
//             triangular solve X = E_p U^-1 and with low rank the Gram matrix of
//             X and its top k eigenpairs (lowrank/top_eigen.h: Householder
//             tridiagonalization, then the projections); approximate, GPTQ's own
//             scaled errors and a randomized block Krylov SVD. --measure-rows
//             shrinks every per-spec term to the rows measured.
//  pack       the pack pass: the statistics again (--sequential none: as the
//             measure pass; layer: forward with statistics, then the forward
//             through the packed layer; true: each site's inputs recomputed up to
//             that site), then pack_linear_choice per linear (GPTQ, low rank at
//             the chosen rank, the stored eps), the exchange over replicas.
//  write      per-layer pack checkpoints, then the final file (parallel HDF5).
#include <string>
#include <vector>

#include "io/model_config.h"
#include "lowrank/lowrank_types.h"
#include "lowrank/spec_errors.h"
#include "pipeline/op_rates.h"
#include "pipeline/resources.h"

namespace amlq {

enum class ComputeDevice { Cpu, Cuda };

struct TimeInputs {
  ResourceInputs resources;  // the same inputs predict_resources takes
  ComputeDevice device = ComputeDevice::Cpu;
  // Per decoder linear (decoder_linears order): the specs of the recipe space
  // that fit its shape (RecipeSpace::applicable_specs), and every measured rank.
  std::vector<int> specs_per_linear;
  std::vector<int> ranks;
  LowRankMethod lowrank = LowRankMethod::Whiten;
  ErrorMode measure_errors = ErrorMode::Exact;  // --measure-errors
  double measure_rows = 1;                      // --measure-rows
  int measure_rows_min = 256;                   // --measure-rows-min
  bool rtn = false;
  int pack_rank = -1;       // rank charged per packed linear; -1: the largest measured
  int ranks_per_node = 1;   // ranks sharing one node's disk
  std::string search = "minsum";
};

// One named cost inside a stage, for the breakdown.
struct TimeTerm {
  std::string name;
  double seconds = 0;
};

struct StageTime {
  double seconds = 0;
  std::vector<TimeTerm> terms;  // largest first
  void add(const std::string& name, double s);
  void sort_terms();
};

struct RankTime {
  int rank = 0, stage = 0, replica = 0;
  StageTime calibrate;  // forward passes + statistics of the measure pass
  StageTime measure;
  StageTime pack;       // the pack pass: its forwards, statistics and quantization
  StageTime write;      // pack checkpoints + this rank's part of the output file
  double wait = 0;      // idle: activations of earlier stages, the slowest rank
  double busy() const { return calibrate.seconds + measure.seconds + pack.seconds + write.seconds; }
};

struct JobTime {
  std::vector<RankTime> ranks;
  // Wall-clock, the stages of the whole job in order.
  double measure_pass = 0;  // calibrate + measure, pipelined over the stages
  double search = 0;
  double pack_pass = 0;
  double write = 0;
  double total = 0;
};

// Throws Usage when a rate the inputs need is missing from `rates`.
JobTime predict_times(const ModelConfig& config, const TimeInputs& in, const OpRates& rates);

// "3 h 12 min", "41 s", "0.2 s".
std::string format_seconds(double seconds);

}  // namespace amlq
