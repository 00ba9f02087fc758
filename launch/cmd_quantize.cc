// amlq quantize and its stages: calibrate, measure, search, pack.
#include <fmt/format.h>

#include <memory>

#include "backend/backend.h"
#include "core/error.h"
#include "core/log.h"
#include "core/mpi_comm.h"
#include "launch/commands.h"
#include "pipeline/quantize_job.h"

namespace amlq::cli {

CLI::Validator validated_plans_check() {
  return CLI::Validator(
      [](const std::string& list) {
        try {
          parse_validated_plans(list);
          return std::string();
        } catch (const Error& e) {
          // CLI11 names the option itself.
          std::string message = e.what();
          constexpr std::string_view kPrefix = "--validate-plans: ";
          if (message.starts_with(kPrefix)) message.erase(0, kPrefix.size());
          return message;
        }
      },
      "LIST");
}

namespace {

struct QuantizeCliOptions {
  QuantizeOptions job;
  std::string quantizer = "gptq";
  std::string lowrank = "whiten";
  std::string factor_format = "fp16";
  std::string sequential = "none";
  std::string measure_errors = "exact";
  std::string memory_turns = "auto";
  bool consecutive = false;
  bool json = false;
};

// Every stage takes the same options, so a stage run can be resumed by `quantize`.
void add_job_options(CLI::App* cmd, QuantizeCliOptions& o, bool needs_out) {
  auto& j = o.job;
  cmd->add_option("model", j.model, "Model directory (config.json + safetensors)")->required();
  cmd->add_option("--calib", j.calib, "Calibration data: text (model's tokenizer) or ids (.u16/.u32/.npy)")->required();
  cmd->add_option("--calib-samples", j.calib_spec.num_samples, "Calibration samples")->capture_default_str();
  cmd->add_option("--calib-seqlen", j.calib_spec.seqlen, "Tokens per calibration sample")->capture_default_str();
  cmd->add_option("--calib-seed", j.calib_spec.seed, "Seed of the random sample offsets")->capture_default_str();
  cmd->add_flag("--calib-consecutive", o.consecutive, "Consecutive windows instead of random offsets");
  cmd->add_option("--target-bpw", j.target_bpw, "Average bits per weight to fit (quantized linears)")
      ->capture_default_str();
  cmd->add_option("--search", j.search, "minsum (loss-weighted) | minsum-unweighted | minmax | minmax-weighted | minsum-lagrange | uniform:<spec>[-r<rank>] | plan:<file> (a report or plan listing every linear's spec and rank)")
      ->capture_default_str();
  cmd->add_option("--recipes", j.recipes, "Recipe space: a name in configs/recipes (default, fast) or a TOML file")
      ->capture_default_str();
  cmd->add_option("--quantizer", o.quantizer, "gptq or rtn")->capture_default_str()->check(CLI::IsMember({"gptq", "rtn"}));
  cmd->add_option("--lowrank", o.lowrank, "Low-rank error reconstruction: whiten, l2qer, svd or none")
      ->capture_default_str();
  cmd->add_option("--factor-format", o.factor_format, "Low-rank factor storage: fp16 or int8")->capture_default_str();
  cmd->add_option("--damp", j.gptq.damp, "GPTQ dampening lambda")->capture_default_str();
  cmd->add_option("--sequential", o.sequential,
                  "Statistics the pack pass quantizes with: none (FP activations), layer (outputs of the quantized "
                  "earlier layers) or true (also inside each layer, as GPTQ's --true-sequential)")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "layer", "true"}));
  cmd->add_option("--measure-rows", j.measure_rows,
                  "Measure candidates on this share (0, 1] of each linear's output rows (seeded random subset)")
      ->capture_default_str();
  cmd->add_option("--measure-rows-min", j.measure_rows_min,
                  "With --measure-rows below 1: never fewer rows than this per linear (smaller samples estimate eps badly)")
      ->capture_default_str();
  cmd->add_option("--measure-errors", o.measure_errors,
                  "exact, or approx: errors from GPTQ's float32 scaled errors (faster, ~1e-5 relative)")
      ->capture_default_str()
      ->check(CLI::IsMember({"exact", "approx"}));
  cmd->add_option("--sensitivity-windows", j.sensitivity_windows,
                  "Held-out calibration windows for each linear's loss-sensitivity probe (0: no probes; the weighted "
                  "searches then weigh every linear alike)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--validate-windows", j.validate_windows,
                  "Held-out calibration windows on which the search's plan and those of --validate-plans are "
                  "compared once packed; the one with the lowest NLL is written (0: pack the search's plan as is; "
                  "the extra plans are packed in the same walk with --sequential none)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--validate-plans", j.validate_plans,
                  "Plans validated next to the search's own, comma-separated: front (the uniform-front plan), minmax, "
                  "minmax-weighted, minsum, minsum-unweighted")
      ->capture_default_str()
      ->check(validated_plans_check());
  cmd->add_option("--validate-data", j.validate_data,
                  "Held-out text or token ids (as --calib) the validation windows come from, drawn as the "
                  "calibration's (default: windows of --calib that calibration and probes did not draw)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--validate-seqlen", j.validate_seqlen,
                  "Tokens per validation window (0: the calibration's --calib-seqlen)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--batch", j.batch, "Sequences per forward batch")->capture_default_str();
  cmd->add_option("--threads", j.threads, "Worker threads per rank for measure and pack (default: the global --threads)");
  cmd->add_option("--samples-per-block", j.samples_per_block,
                  "Samples per Hessian accumulation block (keep fixed for reproducible results)")
      ->capture_default_str();
  auto* out = cmd->add_option("--out", j.out, "Output HDF5 model");
  if (needs_out) out->required();
  cmd->add_option("--work-dir", j.work_dir, "Stage checkpoints (default: <out>.work)");
  cmd->add_option("--report", j.report, "Write the JSON report here");
  cmd->add_option("--svg", j.svg, "Write the allocation picture here (default: next to the report or output)");
  cmd->add_option("--eval", j.eval, "Evaluate FP and quantized perplexity on this data");
  cmd->add_option("--eval-seqlen", j.eval_seqlen, "Evaluation window")->capture_default_str();
  cmd->add_option("--eval-max-windows", j.eval_max_windows, "Evaluate at most this many windows (0: all)")
      ->capture_default_str();
  cmd->add_flag("--resume", j.resume, "Skip stages whose checkpoint exists and matches the inputs");
  cmd->add_option("--replicas", j.replicas, "Data-parallel replicas (ranks = replicas x pipeline stages)")
      ->capture_default_str();
  cmd->add_option("--layers-per-rank", j.layers_per_rank, "Decoder layers per pipeline stage (0: balance by parameters)")
      ->capture_default_str();
  cmd->add_option("--memory-turns", o.memory_turns,
                  "Ranks sharing a host walk their statistics one pipeline stage at a time: on, off, or auto (on when "
                  "they are predicted to need more memory at once than the host has)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "on", "off"}));
  cmd->add_option("--debug-fail-rank", j.debug_fail_rank, "Testing: this rank fails on entering --debug-fail-stage")
      ->group("");
  cmd->add_option("--debug-fail-stage", j.debug_fail_stage, "Testing: calibrate, measure, search or pack")->group("");
  cmd->add_option("--debug-slow-stage", j.debug_slow_stage, "Testing: measure or pack, slowed by --debug-slow-ms")
      ->group("");
  cmd->add_option("--debug-slow-ms", j.debug_slow_ms, "Testing: sleep after each layer of --debug-slow-stage")
      ->check(CLI::Range(0, 60000))
      ->group("");
  cmd->add_flag("--json", o.json, "Print the JSON report on stdout instead of the table");
}

QuantizeOptions resolve(const QuantizeCliOptions& o) {
  QuantizeOptions j = o.job;
  j.rtn = o.quantizer == "rtn";
  j.lowrank = parse_lowrank_method(o.lowrank);
  j.factor_format = parse_factor_format(o.factor_format);
  j.calib_spec.random_offsets = !o.consecutive;
  j.sequential = parse_sequential_mode(o.sequential);
  j.memory_turns = parse_turn_mode(o.memory_turns);
  j.measure_errors = parse_error_mode(o.measure_errors);
  check_measure_rows(j.measure_rows, j.measure_rows_min);
  if (j.target_bpw <= 0) AMLQ_FAIL(Usage, "--target-bpw must be positive, got {}", j.target_bpw);
  if (j.calib_spec.num_samples <= 0 || j.calib_spec.seqlen <= 1)
    AMLQ_FAIL(Usage, "--calib-samples must be >= 1 and --calib-seqlen >= 2");
  if (j.batch <= 0 || j.samples_per_block <= 0) AMLQ_FAIL(Usage, "--batch and --samples-per-block must be positive");
  if (j.out.empty() && j.work_dir.empty()) AMLQ_FAIL(Usage, "give --out or --work-dir");
  if (j.work_dir.empty()) j.work_dir = j.out + ".work";
  return j;
}

void add_stage(CLI::App& app, const GlobalOptions& global, Runner& run, const char* name, const char* help,
               StageLimit limit) {
  auto* cmd = app.add_subcommand(name, help);
  auto opts = std::make_shared<QuantizeCliOptions>();
  add_job_options(cmd, *opts, limit == StageLimit::All || limit == StageLimit::Pack);
  cmd->callback([&run, &global, opts, limit] {
    run = [&global, opts, limit] {
      QuantizeOptions job = resolve(*opts);
      if (job.threads == 0) job.threads = global.threads;
      const Communicator world = Communicator::world();
      bind_backend_devices(world.split_node_local().rank());
      auto backend = make_backend(global.backend);
      const QuantizeReport report = run_quantize(*backend, job, limit, world);
      if (limit != StageLimit::All || world.rank() != 0) return;
      write_report_files(job, report);
      if (opts->json)
        fmt::print("{}\n", report_json(report).dump(2));
      else
        fmt::print("{}", report_table(report));
    };
  });
}

}  // namespace

void add_quantize_commands(CLI::App& app, const GlobalOptions& global, Runner& run) {
  add_stage(app, global, run, "quantize", "Measure, search, pack and report in one run", StageLimit::All);
  add_stage(app, global, run, "calibrate", "Statistics only: per-layer Hessians and activation scales -> <work>/calib/ (not needed by measure/pack)",
            StageLimit::Calibrate);
  add_stage(app, global, run, "measure", "Stage 1: statistics and error of every candidate, layer by layer -> <work>/measure.json",
            StageLimit::Measure);
  add_stage(app, global, run, "search", "Stage 2: one candidate per linear under the budget -> <work>/plan.json",
            StageLimit::Search);
  add_stage(app, global, run, "pack", "Stage 3: statistics again, quantize with the plan, write the HDF5 model", StageLimit::Pack);
}

}  // namespace amlq::cli
