#pragma once
// Everything a quantization run depends on. Stages record a hash of the
// options that affect their output, so --resume reuses a stage's file only
// when it was made from the same inputs.
#include <string>
#include <string_view>

#include "io/tokenizer/dataset.h"
#include "lowrank/lowrank_types.h"
#include "lowrank/spec_errors.h"
#include "quant/quant_spec.h"
#include "search/search.h"

namespace amlq {

// Where the pack pass takes each layer's statistics from (docs/DISTRIBUTED.md):
//  none:  the FP model's activations, the same statistics the measure pass saw;
//  layer: the outputs of the already quantized earlier layers (layer-sequential);
//  true:  as layer, and inside a layer each site's inputs recomputed through the
//         linears quantized before it (q/k/v -> o -> gate/up -> down), as the
//         GPTQ reference's --true-sequential.
enum class SequentialMode { None, Layer, True };
std::string sequential_mode_name(SequentialMode mode);
SequentialMode parse_sequential_mode(std::string_view name);  // throws Usage

// --memory-turns (pipeline/memory_turns.h): whether the ranks sharing a host
// walk their statistics one pipeline stage at a time. auto: when together they
// are predicted to need more memory than the host has.
enum class TurnMode { Off, On, Auto };
std::string turn_mode_name(TurnMode mode);
TurnMode parse_turn_mode(std::string_view name);  // throws Usage

// --measure-errors: "exact" or "approx" (lowrank/spec_errors.h); throws Usage.
ErrorMode parse_error_mode(std::string_view name);
// --measure-rows F in (0, 1] and --measure-rows-min >= 1; throws Usage.
void check_measure_rows(double fraction, int min_rows);

struct QuantizeOptions {
  std::string model;         // MODEL_DIR (config.json + safetensors)
  std::string calib;         // calibration data: text or ids (.u16/.u32/.npy)
  CalibrationSpec calib_spec{128, 256, 0, true};
  double target_bpw = 3.0;
  // minsum (loss-weighted) | minsum-unweighted | minmax | minmax-weighted |
  // minsum-lagrange | uniform:<spec>[-r<k>] (search/search.h). The default is
  // what bench/search/evidence.sh supports (README, "Does the search pay?").
  std::string search = "minsum";
  std::string recipes = "default";  // recipe space name or TOML path
  bool rtn = false;                  // quantizer: RTN instead of GPTQ
  LowRankMethod lowrank = LowRankMethod::Whiten;
  FactorFormat factor_format = FactorFormat::Fp16;
  GptqOptions gptq;
  SequentialMode sequential = SequentialMode::None;  // statistics of the pack pass
  // Measure: the share of output rows each candidate is measured on (a seeded
  // random subset per linear; eps is then an unbiased estimate with a standard
  // error; pack always quantizes every row), and how errors are computed
  // (lowrank/spec_errors.h: Exact, or Approximate from GPTQ's float32 errors).
  double measure_rows = 1.0;
  int measure_rows_min = 256;  // never fewer rows than this (measured_rows in pipeline/measure_site.h)
  ErrorMode measure_errors = ErrorMode::Exact;
  // Loss-sensitivity probes (pipeline/sensitivity.h): held-out calibration
  // windows each linear's noise probe runs on; 0 skips them (the weighted
  // searches then fall back to unweighted errors).
  int sensitivity_windows = 4;
  // Plan validation (pipeline/plan_validation.h): held-out calibration windows
  // (after the probes') on which the search's plan and its alternatives are
  // compared once packed; the best goes out. 0 packs the search's plan as is.
  // Only budgeted searches (not uniform: or plan:) are validated.
  int validate_windows = 16;
  // The plans validated next to the search's own (search/search.h,
  // kValidatedPlanNames), comma-separated.
  std::string validate_plans{kDefaultValidatedPlans};
  // Text or token ids the validation windows come from; empty: held-out
  // windows of the calibration data.
  std::string validate_data;
  // Tokens per validation window; 0: the calibration's seqlen.
  int validate_seqlen = 0;
  int validation_seqlen() const { return validate_seqlen > 0 ? validate_seqlen : calib_spec.seqlen; }
  int batch = 8;                     // sequences per forward batch
  int threads = 0;                   // worker threads per rank (0: all cores)
  int samples_per_block = 8;         // Hessian accumulation block (determinism across ranks)

  std::string out;                   // the HDF5 model
  std::string work_dir;              // stage checkpoints; default: <out>.work
  std::string report;                // JSON report path (optional)
  std::string svg;                   // allocation picture (default: <report or out>.svg)
  std::string eval;                  // evaluation data (optional)
  int eval_seqlen = 512;
  int eval_max_windows = 0;
  bool resume = false;

  // Distribution (mpirun -np N): N = replicas x pipeline stages.
  int replicas = 1;
  int layers_per_rank = 0;  // 0: balance by parameter count
  TurnMode memory_turns = TurnMode::Auto;
  // Fault injection for tests: this rank throws when it enters this stage.
  int debug_fail_rank = -1;
  std::string debug_fail_stage;  // calibrate | measure | search | pack
  // Slowing for tests (the kill -9 harness): every rank sleeps this long after
  // each layer of that pass (measure | pack), so that a kill can land inside it.
  std::string debug_slow_stage;
  int debug_slow_ms = 0;

  std::string quantizer_name() const { return rtn ? "rtn" : "gptq"; }
  std::string resolved_work_dir() const { return work_dir.empty() ? out + ".work" : work_dir; }
};

}  // namespace amlq
