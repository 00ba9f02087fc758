#pragma once
// The run report: JSON for batch scripts (launch/amlq-zoo reads it), a human
// table for the terminal, and an SVG picture of the allocation per layer.
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "io/model_config.h"
#include "pipeline/quantize_options.h"

namespace amlq {

struct ReportLayer {
  std::string name;    // model.layers.3.mlp.down_proj
  int layer = 0;       // decoder layer index
  std::string linear;  // mlp.down_proj
  int64_t numel = 0;
  std::string spec;    // QuantSpec label
  double code_bits = 0;  // column-weighted mean code bit width over the parts
  int rank = 0;
  double bpw = 0;
  double eps_measured = 0;  // what the search saw
  double eps = 0;           // of the stored result
  double alpha = 0;         // loss sensitivity (0: not measured)
};

struct StageSeconds {
  double calibrate = 0, measure = 0, sensitivity = 0, search = 0, pack = 0, eval = 0, total = 0;
};

struct EvalSummary {
  std::string data;
  int seqlen = 0;
  int64_t windows = 0;
  int64_t scored_tokens = 0;
  double fp_ppl = 0;
  double quantized_ppl = 0;
  double fp_nll = 0;
  double quantized_nll = 0;
};

// One rank's measured peak resident memory next to the plan's prediction.
struct RankResources {
  int rank = 0;
  std::string layers;            // "[0, 40)"
  int64_t peak_rss = 0;          // VmHWM at the end of pack (calibrate + measure + search + pack)
  int64_t predicted_peak_rss = 0;
  std::string predicted_phase;
  int64_t peak_device = 0;       // CUDA backend only
  // Memory turns (pipeline/memory_turns.h): seconds waited for them, and the
  // Unix times at which this rank's last turn (the pack pass's) started and ended.
  double turn_waited_seconds = 0;
  double turn_started = 0, turn_ended = 0;
};

// One candidate plan of a validation (--validate-windows, pipeline/plan_validation.h).
struct ValidatedPlan {
  std::string method;  // "minsum", "front:3b-g64+3b-g32", "minmax", ...
  double bpw = 0;
  double predicted_delta_nll = 0;
  double validation_delta_nll = 0;  // mean token NLL increase over FP on the held-out windows
  bool chosen = false;
};

struct QuantizeReport {
  std::string model;
  std::string out;
  std::string calibration;  // calibration set description
  std::string search;
  std::string quantizer;
  std::string lowrank;
  std::string recipes;
  std::string sequential;  // statistics of the pack pass: none, layer, true
  double target_bpw = 0;
  double achieved_bpw = 0;
  int64_t quantized_params = 0;
  int candidates = 0;  // measured (spec, rank) pairs over all layers
  // sum_l alpha_l * eps_l of the plan: the mean token NLL increase the loss
  // sensitivities predict (0 without them); compare eval's measured increase.
  double predicted_delta_nll = 0;
  bool loss_weighted = false;  // the search minimized alpha * eps
  // The plans validated on held-out windows (empty without validation); the
  // output holds the chosen one.
  std::vector<ValidatedPlan> validation;
  int validation_windows = 0;
  int validation_seqlen = 0;
  std::string validation_data;  // the file the windows came from
  std::vector<ReportLayer> layers;
  std::optional<EvalSummary> eval;
  StageSeconds seconds;
  std::vector<std::string> resumed;  // stages taken from their checkpoints
  int ranks = 1;
  std::vector<RankResources> rank_resources;
  bool memory_turns = false;  // on for some host (--memory-turns)
  int64_t work_dir_bytes = 0;  // at the end of pack
};

nlohmann::ordered_json report_json(const QuantizeReport& report);
std::string report_table(const QuantizeReport& report);
// Bits per weight and rank per decoder layer, one series per linear type (AMLQ's Figure 2).
std::string allocation_svg(const QuantizeReport& report);

}  // namespace amlq
