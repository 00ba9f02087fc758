#pragma once
// `amlq plan`: what a quantize run would need on a given cluster, from
// config.json alone. Memory and disk come from predict_resources (the function
// the run itself logs and reports, pipeline/resources.h); seconds from the
// time model (pipeline/time_model.h). The verdict checks each node's host
// memory, each GPU's memory and the disk, and when something does not fit it
// searches the options that fix it (each candidate is planned again with the
// same functions; nothing is guessed).
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/model_config.h"
#include "pipeline/op_rates.h"
#include "pipeline/quantize_options.h"
#include "pipeline/resources.h"
#include "pipeline/time_model.h"
#include "search/recipe_space.h"

namespace amlq {

struct ClusterSpec {
  int np = 1;              // MPI ranks
  int ranks_per_node = 1;  // consecutive ranks share a node (amlq-launch numbers ranks node by node)
  int64_t host_mem = 0;    // per node; 0: not checked
  int64_t gpu_mem = 0;     // per GPU (one rank per GPU); 0: not checked
  int64_t disk = 0;        // for the work directory and the output together; 0: not checked
};

struct PlanInputs {
  QuantizeOptions job;  // what `amlq quantize` would get (threads > 0)
  ClusterSpec cluster;
  ComputeDevice device = ComputeDevice::Cpu;
  double weight_bytes = 2;  // bytes per element of the checkpoint's weights
  RecipeSpace space;        // measured_space(job)
  // Resident memory of the process before any work (ResourceInputs::runtime_bytes);
  // 0: predict_resources' default. `amlq plan` measures its own, as the run does.
  int64_t runtime_bytes = 0;
};

struct PlanCheck {
  std::string what;  // "host memory", "GPU memory", "disk"
  int64_t need = 0;
  int64_t have = 0;
  std::string where;  // "node 0 (ranks 0-7)", "rank 3 (measure mlp_out)"
  bool ok() const { return need <= have; }
};

struct PlanFix {
  std::string options;  // "--threads 2", "--np 16 (2 nodes)"
  std::string effect;   // what the plan then needs and takes
};

struct ClusterPlan {
  ResourceInputs resources;
  TimeInputs time_inputs;
  std::vector<RankPrediction> ranks;
  JobTime times;
  int stages = 1;
  int nodes = 1;
  std::vector<int64_t> node_host;  // the ranks' peaks per node (pipeline/resources.h host_peak)
  std::vector<bool> node_turns;    // whether that node's ranks take memory turns
  int64_t peak_device = 0;         // largest over ranks
  int64_t work_dir_bytes = 0;      // sum over ranks
  int64_t output_bytes = 0;
  int64_t bytes_sent = 0;          // sum over ranks
  std::vector<PlanCheck> checks;   // only those with a limit
  std::vector<PlanFix> fixes;      // when something does not fit
  std::string no_fix;              // why no single option fixes it, when none does
  bool fits() const;
};

// Throws Usage for layouts the run would refuse (np not a multiple of
// replicas, more stages than layers, samples that do not split over replicas).
ClusterPlan make_plan(const ModelConfig& config, const PlanInputs& in, const OpRates& rates, bool find_fixes = true);

// The human table (one row per rank, or per group of ranks of the same shape),
// the job's totals and the verdict.
std::string format_plan(const ModelConfig& config, const PlanInputs& in, const ClusterPlan& plan,
                        const OpRates& rates);
nlohmann::ordered_json plan_json(const ModelConfig& config, const PlanInputs& in, const ClusterPlan& plan,
                                 const OpRates& rates);

// --gpu-mem 80GiB, --host-mem 512GiB, --disk 1.5TB: parse_byte_size (io/safetensors.h;
// KB/MB/GB/TB decimal, KiB/MiB/GiB/TiB binary) as an option value. Throws Usage.
int64_t parse_size_option(const std::string& text, const std::string& option);

}  // namespace amlq
