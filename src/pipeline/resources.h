#pragma once
// What a quantize run needs per rank, predicted from config.json and the
// options alone (no weights read): peak host memory, work-dir disk and bytes
// sent. `amlq quantize` logs this at start and records it next to the measured
// peak in the report; `amlq plan` prints it for any cluster layout. The terms
// follow the streaming design (pipeline/layer_passes.h); docs/DISTRIBUTED.md
// states the formula.
#include <cstdint>
#include <string>
#include <vector>

#include "io/model_config.h"
#include "pipeline/quantize_options.h"
#include "pipeline/topology.h"
#include "search/recipe_space.h"
#include "search/search.h"

namespace amlq {

struct ResourceInputs {
  int world_size = 1;
  int replicas = 1;
  int layers_per_rank = 0;
  int samples = 128;
  int seqlen = 256;
  int batch = 8;
  int samples_per_block = 8;
  int threads = 1;              // measure/pack workers per rank
  double weight_bytes = 2;      // bytes per element of the source weights (bf16: 2)
  int max_rank = 0;             // largest low-rank rank measured (0: none)
  bool lowrank = false;         // whiten/l2qer/svd on
  int specs = 1;                // specs measured per linear
  int column_orders = 1;        // distinct column orders among them (act-order or not): factors per site
  double measure_rows = 1;      // --measure-rows
  int measure_rows_min = 256;   // --measure-rows-min
  int sensitivity_windows = 0;  // --sensitivity-windows (0: no probe phase)
  int validate_windows = 0;     // --validate-windows (0: no validation phase)
  int validate_seqlen = 256;    // tokens per validation window
  // Plans the pack pass packs: 1, or with validation up to max_validated_plans
  // (search/search.h; pipeline/plan_validation.h): in one walk with
  // --sequential none, else one walk each.
  int pack_plans = 1;
  double output_bpw = 4.5;      // for the packed size (pack checkpoints, output file)
  SequentialMode sequential = SequentialMode::None;
  // Resident memory of the process before any work: shared libraries (the CUDA
  // libraries alone are ~180 MiB), MPI, HDF5. A run measures it at start; `amlq
  // plan` uses this default (measured on the development machine).
  int64_t runtime_bytes = 300ll << 20;
  // The CUDA backend (--backend cuda): predict each rank's peak device memory
  // too. Every backend call uploads its operands and frees them on return
  // (kernels/cuda_backend.cc), so the peak is the largest call, times the
  // measure/pack workers that may call it at once.
  bool device = false;
  // CUDA context, cuBLAS/cuSOLVER handles and loaded kernels: an estimate (no
  // device has measured it yet).
  int64_t device_runtime_bytes = 768ll << 20;
  int gptq_block = 128;  // GPTQ column block (GptqOptions::block_size): the CUDA error buffer
};

ResourceInputs resource_inputs(const QuantizeOptions& options, int world_size, double weight_bytes, int specs,
                               int max_rank);
// The same from the recipe space the run measures (specs, largest rank): what
// `amlq quantize` and `amlq plan` both call.
ResourceInputs resource_inputs(const QuantizeOptions& options, int world_size, double weight_bytes,
                               const RecipeSpace& space);

// The recipe space a run measures: `--search uniform:<spec>[-r<k>]` measures only
// that candidate and `--search plan:<file>` only the plan's specs x ranks
// (nothing else could change their result), else --recipes. With --quantizer
// rtn every spec is plain (no act-order, no static groups).
RecipeSpace measured_space(const QuantizeOptions& options);
// The configurations `--search plan:<file>` names (read_listed_plan), made plain
// under --quantizer rtn as measured_space makes them.
std::vector<ListedChoice> listed_plan(const QuantizeOptions& options);
// The space that measures exactly `listed` (its specs x its ranks), named
// `name`: measured_space of a plan, for a caller that already holds the plan
// (the quantize job reads the file once and searches with the same list).
RecipeSpace listed_space(const std::string& name, const std::vector<ListedChoice>& listed);
// The search method as run: options.search, with a uniform spec made plain
// under --quantizer rtn so that it names a measured candidate.
std::string resolved_search(const QuantizeOptions& options);

// One term of a rank's memory, in bytes.
struct MemoryTerm {
  std::string name;
  int64_t bytes = 0;
};

// Peak memory of one phase of the run (the terms alive at that phase's peak).
struct PhaseMemory {
  std::string phase;  // "forward + statistics", "measure <site>", "pack", "write"
  std::vector<MemoryTerm> terms;
  int64_t total() const;
};

struct RankPrediction {
  int rank = 0, stage = 0, replica = 0;
  LayerBlock layers;
  int samples = 0;                   // this replica's share
  std::vector<PhaseMemory> phases;
  int64_t peak_host = 0;             // max over phases
  std::string peak_phase;
  // Outside its statistics walks (pipeline/memory_turns.h): what it holds while
  // waiting for its turn or once done (runtime, mapped pages, its inputs), and the
  // most before its turn, which includes the FP forward feeding the next stage.
  int64_t waiting = 0;
  int64_t before_turn = 0;
  int64_t work_dir_bytes = 0;        // this rank's share of the work directory at its largest
  int64_t bytes_sent = 0;            // over MPI, whole run
  // --backend cuda (ResourceInputs::device): the device buffers of each phase's
  // largest backend call; empty otherwise.
  std::vector<PhaseMemory> device_phases;
  int64_t peak_device = 0;
  std::string peak_device_phase;
};

// One entry per rank of the layout (the topology of make_topology).
std::vector<RankPrediction> predict_resources(const ModelConfig& config, const ResourceInputs& in);

// Bytes of the packed output for the whole model (codes, scales, zeros, factors, passthrough).
int64_t predicted_output_bytes(const ModelConfig& config, const ResourceInputs& in);

// Peak host memory of the ranks sharing one host (indices into `ranks`): the sum
// of their peaks, or with memory turns the worst moment of the turn order: one
// stage group at its peaks (its ranks walk together), the lower stages on the
// host done with theirs (waiting), the higher ones before theirs (which may
// overlap their feeding forward).
int64_t host_peak(const std::vector<RankPrediction>& ranks, const std::vector<int>& on_host, bool turns);

// A few lines: per rank layers, peak host memory and its phase.
std::string format_prediction(const std::vector<RankPrediction>& ranks);

}  // namespace amlq
