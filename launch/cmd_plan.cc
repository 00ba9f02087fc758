// amlq plan CONFIG --np N ...: memory, disk, traffic and time per rank of a
// quantize run, from config.json alone, and whether it fits the cluster.
// amlq plan --measure-rates [--out FILE]: the operation rates of this machine.
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/memory.h"
#include "core/parallel.h"
#include "io/model_config.h"
#include "launch/commands.h"
#include "pipeline/cluster_plan.h"

namespace amlq::cli {
namespace {

struct PlanCliOptions {
  std::string model;
  int np = 1;
  int replicas = 1;
  int gpus_per_node = 8;
  int ranks_per_node = 0;  // 0: --gpus-per-node with cuda, else all ranks on one node
  std::string gpu_mem = "80GiB";
  std::string host_mem;    // "": this machine's memory
  std::string disk;
  std::string recipes = "default";
  std::string search = "minsum";
  double target_bpw = 3.0;
  int calib_samples = 128;
  int calib_seqlen = 256;
  int batch = 8;
  int samples_per_block = 8;
  int sensitivity_windows = 4;
  int validate_windows = QuantizeOptions{}.validate_windows;
  std::string validate_plans = QuantizeOptions{}.validate_plans;
  int validate_seqlen = QuantizeOptions{}.validate_seqlen;
  std::string sequential = "none";
  std::string memory_turns = "auto";
  int layers_per_rank = 0;
  int threads = 0;
  std::string weight_dtype;  // "": config.json's torch_dtype
  std::string quantizer = "gptq";
  std::string lowrank = "whiten";
  std::vector<std::string> rates;
  double measure_rows = 1;
  int measure_rows_min = 256;
  std::string measure_errors = "exact";
  bool json = false;
  // --measure-rates
  bool measure_rates = false;
  std::string out;
  std::string disk_dir = ".";
};

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      std::string name = line.substr(line.find(':') + 1);
      name.erase(0, name.find_first_not_of(' '));
      std::string clean;
      for (char ch : name)
        if (ch != '"' && ch != '\\') clean += ch;
      return clean;
    }
  return "unknown CPU";
}

double weight_bytes_of(const ModelConfig& config, const std::string& option) {
  std::string dtype = option;
  if (dtype.empty()) {
    try {
      const auto j = nlohmann::json::parse(config.source_json);
      dtype = j.value("torch_dtype", std::string("bfloat16"));
    } catch (const std::exception&) {
      dtype = "bfloat16";
    }
  }
  if (dtype == "bf16" || dtype == "bfloat16" || dtype == "f16" || dtype == "float16" || dtype == "fp16") return 2;
  if (dtype == "f32" || dtype == "float32" || dtype == "fp32") return 4;
  AMLQ_FAIL(Usage, "--weight-dtype {}: use bf16, f16 or f32", dtype);
}

void measure_rates(const PlanCliOptions& o, const GlobalOptions& global) {
  RateProbeOptions probe;
  probe.disk_dir = o.disk_dir;
  probe.threads = o.threads > 0 ? o.threads : global.threads;
  AMLQ_LOG_INFO("measuring operation rates on {} thread(s) (about half a minute)", resolve_threads(probe.threads));
  OpRates rates = measure_op_rates(probe, [](const std::string& line) { AMLQ_LOG_INFO("  {}", line); });
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char date[32];
  std::strftime(date, sizeof(date), "%Y-%m-%d", std::gmtime(&now));
  rates.machine = fmt::format("{}, {} hardware threads, {:.0f} GiB", cpu_model(), std::thread::hardware_concurrency(),
                              static_cast<double>(host_memory_bytes()) / (1ll << 30));
  rates.measured = date;
  const std::string text = op_rates_toml(
      rates, {"Operation rates for `amlq plan` (src/pipeline/op_rates.h describes every key).",
              fmt::format("Measured by `amlq plan --measure-rates` on {} ({}) on {}, {} thread(s).", host, rates.machine,
                          date, rates.threads),
              "Best of a few repetitions; a machine shared with other jobs measures low."});
  if (o.out.empty()) {
    fmt::print("{}", text);
    return;
  }
  AtomicOutput out(o.out);
  {
    std::ofstream f(out.temp_path());
    f << text;
    if (!f) AMLQ_FAIL(Output, "{}: write failed", out.temp_path());
  }
  out.commit();
  AMLQ_LOG_INFO("rates written to {}", o.out);
}

void run_plan(const PlanCliOptions& o, const GlobalOptions& global) {
  // What this binary holds before any work: the run measures the same at its
  // start and uses it as the runtime term of its prediction.
  const int64_t runtime_rss = read_process_memory().rss;
  if (o.measure_rates) return measure_rates(o, global);
  if (o.model.empty()) AMLQ_FAIL(Usage, "give a model directory or config.json (or --measure-rates)");
  const ModelConfig config = load_model_config(o.model);

  PlanInputs in;
  QuantizeOptions& job = in.job;
  job.model = o.model;
  job.calib_spec.num_samples = o.calib_samples;
  job.calib_spec.seqlen = o.calib_seqlen;
  job.target_bpw = o.target_bpw;
  job.search = o.search;
  job.recipes = o.recipes;
  job.rtn = o.quantizer == "rtn";
  job.lowrank = parse_lowrank_method(o.lowrank);
  job.sequential = parse_sequential_mode(o.sequential);
  job.memory_turns = parse_turn_mode(o.memory_turns);
  job.batch = o.batch;
  job.samples_per_block = o.samples_per_block;
  job.sensitivity_windows = o.sensitivity_windows;
  job.validate_windows = o.validate_windows;
  job.validate_plans = o.validate_plans;
  job.validate_seqlen = o.validate_seqlen;
  job.measure_rows = o.measure_rows;
  job.measure_rows_min = o.measure_rows_min;
  job.measure_errors = parse_error_mode(o.measure_errors);
  check_measure_rows(job.measure_rows, job.measure_rows_min);
  job.replicas = o.replicas;
  job.layers_per_rank = o.layers_per_rank;
  job.threads = resolve_threads(o.threads > 0 ? o.threads : global.threads);
  if (job.target_bpw <= 0) AMLQ_FAIL(Usage, "--target-bpw must be positive, got {}", job.target_bpw);

  if (global.backend != "cpu" && global.backend != "cuda")
    AMLQ_FAIL(Usage, "amlq plan --backend {}: plan for cpu or cuda", global.backend);
  in.device = global.backend == "cuda" ? ComputeDevice::Cuda : ComputeDevice::Cpu;
  in.weight_bytes = weight_bytes_of(config, o.weight_dtype);
  in.space = measured_space(job);
  // A CUDA run also holds the CUDA libraries and the context's host side, which
  // this process (no device opened) does not: keep the default there.
  if (runtime_rss > 0)
    in.runtime_bytes = in.device == ComputeDevice::Cuda ? std::max(runtime_rss, ResourceInputs().runtime_bytes) : runtime_rss;

  ClusterSpec& cl = in.cluster;
  cl.np = o.np;
  if (o.gpus_per_node < 1) AMLQ_FAIL(Usage, "--gpus-per-node must be >= 1, got {}", o.gpus_per_node);
  cl.ranks_per_node = o.ranks_per_node > 0 ? o.ranks_per_node
                      : in.device == ComputeDevice::Cuda ? o.gpus_per_node
                                                          : std::max(1, o.np);
  if (in.device == ComputeDevice::Cuda && cl.ranks_per_node > o.gpus_per_node)
    AMLQ_FAIL(Usage, "--ranks-per-node {} exceeds --gpus-per-node {} (one GPU per rank)", cl.ranks_per_node,
              o.gpus_per_node);
  cl.host_mem = o.host_mem.empty() ? host_memory_bytes() : parse_size_option(o.host_mem, "--host-mem");
  if (in.device == ComputeDevice::Cuda) cl.gpu_mem = parse_size_option(o.gpu_mem, "--gpu-mem");
  if (!o.disk.empty()) cl.disk = parse_size_option(o.disk, "--disk");

  std::vector<std::string> rate_files = o.rates;
  if (rate_files.empty()) {
    rate_files.push_back("cpu");
    if (in.device == ComputeDevice::Cuda) rate_files.push_back("cuda");
  }
  const OpRates rates = load_op_rates(rate_files);
  const ClusterPlan plan = make_plan(config, in, rates);
  if (o.json) {
    fmt::print("{}\n", plan_json(config, in, plan, rates).dump(2));
    return;
  }
  if (o.host_mem.empty())
    fmt::print("(host memory per node: this machine's {}; give --host-mem for the cluster's)\n",
               format_bytes(static_cast<double>(cl.host_mem)));
  fmt::print("{}", format_plan(config, in, plan, rates));
}

}  // namespace

void add_plan_command(CLI::App& app, const GlobalOptions& global, Runner& run) {
  auto* cmd = app.add_subcommand(
      "plan", "Memory, disk, traffic and time per rank of a quantize run on a cluster, from config.json alone");
  auto o = std::make_shared<PlanCliOptions>();
  cmd->add_option("model", o->model, "Model directory or its config.json (no weights are read)");
  cmd->add_option("--np", o->np, "MPI ranks (one per GPU with --backend cuda)")->capture_default_str();
  cmd->add_option("--replicas", o->replicas, "Data-parallel replicas (ranks = replicas x pipeline stages)")
      ->capture_default_str();
  cmd->add_option("--gpus-per-node", o->gpus_per_node, "GPUs per node (--backend cuda)")->capture_default_str();
  cmd->add_option("--ranks-per-node", o->ranks_per_node,
                  "Ranks per node (default: --gpus-per-node with cuda, else all ranks on one node)");
  cmd->add_option("--gpu-mem", o->gpu_mem, "Memory of one GPU, e.g. 80GiB")->capture_default_str();
  cmd->add_option("--host-mem", o->host_mem, "Host memory of one node, e.g. 512GiB (default: this machine's)");
  cmd->add_option("--disk", o->disk, "Free disk for the work directory and the output (default: not checked)");
  cmd->add_option("--recipes", o->recipes, "Recipe space: a name in configs/recipes or a TOML file")
      ->capture_default_str();
  cmd->add_option("--search", o->search, "minsum | minsum-unweighted | minmax | minmax-weighted | minsum-lagrange | uniform:<spec>[-r<rank>] | plan:<file>")
      ->capture_default_str();
  cmd->add_option("--target-bpw", o->target_bpw, "Average bits per weight (sizes the packed output)")
      ->capture_default_str();
  cmd->add_option("--calib-samples", o->calib_samples, "Calibration samples")->capture_default_str();
  cmd->add_option("--calib-seqlen", o->calib_seqlen, "Tokens per calibration sample")->capture_default_str();
  cmd->add_option("--batch", o->batch, "Sequences per forward batch")->capture_default_str();
  cmd->add_option("--sensitivity-windows", o->sensitivity_windows, "Loss-sensitivity probe windows (0: none)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--validate-windows", o->validate_windows,
                  "As quantize: plan validation windows (0: none; else the pack pass packs the search's plan and "
                  "those of --validate-plans)")
      ->capture_default_str();
  cmd->add_option("--validate-plans", o->validate_plans, "As quantize: the plans validated next to the search's")
      ->capture_default_str()
      ->check(validated_plans_check());
  cmd->add_option("--validate-seqlen", o->validate_seqlen, "As quantize: tokens per validation window (0: --calib-seqlen)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--samples-per-block", o->samples_per_block, "Samples per Hessian accumulation block")
      ->capture_default_str();
  cmd->add_option("--sequential", o->sequential, "Statistics of the pack pass: none, layer or true")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "layer", "true"}));
  cmd->add_option("--memory-turns", o->memory_turns,
                  "Ranks sharing a node walk their statistics one stage at a time: auto (when they do not fit at "
                  "once), on or off")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "on", "off"}));
  cmd->add_option("--layers-per-rank", o->layers_per_rank, "Decoder layers per pipeline stage (0: balance)")
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "Measure/pack workers per rank (default: the global --threads, else all cores here)");
  cmd->add_option("--weight-dtype", o->weight_dtype, "Checkpoint dtype: bf16, f16 or f32 (default: config.json's torch_dtype)");
  cmd->add_option("--quantizer", o->quantizer, "gptq or rtn")->capture_default_str()->check(CLI::IsMember({"gptq", "rtn"}));
  cmd->add_option("--lowrank", o->lowrank, "whiten, l2qer, svd or none")->capture_default_str();
  cmd->add_option("--rates", o->rates,
                  "Operation rates: configs/rates/<name>.toml or a file; repeat to layer them (default: cpu, and cuda "
                  "with --backend cuda)");
  cmd->add_option("--measure-rows", o->measure_rows, "As quantize: share (0, 1] of each linear's rows measured")
      ->capture_default_str();
  cmd->add_option("--measure-rows-min", o->measure_rows_min, "As quantize: fewest rows measured per linear")
      ->capture_default_str();
  cmd->add_option("--measure-errors", o->measure_errors, "As quantize: exact or approx")
      ->capture_default_str()
      ->check(CLI::IsMember({"exact", "approx"}));
  cmd->add_flag("--json", o->json, "Print the plan as JSON");
  cmd->add_flag("--measure-rates", o->measure_rates, "Time representative operations here and print a rates file");
  cmd->add_option("--out", o->out, "--measure-rates: write the rates file here instead of stdout");
  cmd->add_option("--disk-dir", o->disk_dir, "--measure-rates: where the disk probe writes (and removes) its file")
      ->capture_default_str();
  cmd->callback([&run, &global, o] { run = [&global, o] { run_plan(*o, global); }; });
}

}  // namespace amlq::cli
