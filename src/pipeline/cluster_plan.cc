#include "pipeline/cluster_plan.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <optional>
#include <map>
#include <numeric>

#include "core/error.h"
#include "core/format.h"
#include "core/memory.h"
#include "io/safetensors.h"
#include "pipeline/topology.h"

namespace amlq {
namespace {

std::string ranks_text(const std::vector<int>& ranks) {
  std::string out;
  for (size_t i = 0; i < ranks.size();) {
    size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += j == i ? std::to_string(ranks[i]) : fmt::format("{}-{}", ranks[i], ranks[j]);
    i = j + 1;
  }
  return out;
}

std::string sequential_option(SequentialMode mode) { return sequential_mode_name(mode); }

ClusterPlan evaluate(const ModelConfig& config, const PlanInputs& in, const OpRates& rates) {
  const auto& job = in.job;
  const auto& cl = in.cluster;
  if (cl.np < 1) AMLQ_FAIL(Usage, "--np must be >= 1, got {}", cl.np);
  if (cl.ranks_per_node < 1) AMLQ_FAIL(Usage, "--ranks-per-node must be >= 1, got {}", cl.ranks_per_node);
  if (job.threads < 1) AMLQ_FAIL(Usage, "--threads must be >= 1, got {}", job.threads);
  if (job.calib_spec.num_samples <= 0 || job.calib_spec.seqlen <= 1)
    AMLQ_FAIL(Usage, "--calib-samples must be >= 1 and --calib-seqlen >= 2");
  if (job.batch <= 0 || job.samples_per_block <= 0) AMLQ_FAIL(Usage, "--batch and --samples-per-block must be positive");
  // The run's own checks: the layout and the split of the samples over replicas.
  const Topology layout = make_topology(config, 0, cl.np, job.replicas, job.layers_per_rank);
  replica_samples(job.calib_spec.num_samples, layout.replicas, 0, job.batch, job.samples_per_block);

  ClusterPlan plan;
  plan.stages = layout.stages;
  plan.resources = resource_inputs(job, cl.np, in.weight_bytes, in.space);
  plan.resources.device = in.device == ComputeDevice::Cuda;
  if (in.runtime_bytes > 0) plan.resources.runtime_bytes = in.runtime_bytes;
  plan.ranks = predict_resources(config, plan.resources);

  TimeInputs& ti = plan.time_inputs;
  ti.resources = plan.resources;
  ti.device = in.device;
  for (const auto& l : decoder_linears(config))
    ti.specs_per_linear.push_back(static_cast<int>(in.space.applicable_specs(l.rows, l.cols, l.name).size()));
  ti.ranks = in.space.ranks;
  ti.lowrank = job.lowrank;
  ti.measure_errors = job.measure_errors;
  ti.measure_rows = job.measure_rows;
  ti.measure_rows_min = job.measure_rows_min;
  ti.rtn = job.rtn;
  ti.ranks_per_node = std::min(cl.ranks_per_node, cl.np);
  ti.search = job.search;
  plan.times = predict_times(config, ti, rates);

  plan.nodes = (cl.np + cl.ranks_per_node - 1) / cl.ranks_per_node;
  plan.node_host.assign(static_cast<size_t>(plan.nodes), 0);
  plan.node_turns.assign(static_cast<size_t>(plan.nodes), false);
  for (int node = 0; node < plan.nodes; ++node) {
    std::vector<int> on_host;
    for (int r = node * cl.ranks_per_node; r < std::min(cl.np, (node + 1) * cl.ranks_per_node); ++r) on_host.push_back(r);
    // As the run decides (quantize_job.cc): auto takes turns when the node's ranks do not fit at once.
    const int64_t at_once = host_peak(plan.ranks, on_host, false);
    bool turns = job.memory_turns == TurnMode::On;
    if (job.memory_turns == TurnMode::Auto) turns = cl.host_mem > 0 && at_once > cl.host_mem && on_host.size() > 1;
    plan.node_turns[static_cast<size_t>(node)] = turns;
    plan.node_host[static_cast<size_t>(node)] = turns ? host_peak(plan.ranks, on_host, true) : at_once;
  }
  for (const auto& r : plan.ranks) {
    plan.peak_device = std::max(plan.peak_device, r.peak_device);
    plan.work_dir_bytes += r.work_dir_bytes;
    plan.bytes_sent += r.bytes_sent;
  }
  plan.output_bytes = predicted_output_bytes(config, plan.resources);

  if (cl.host_mem > 0) {
    const auto worst = std::max_element(plan.node_host.begin(), plan.node_host.end());
    const int node = static_cast<int>(worst - plan.node_host.begin());
    const int first = node * cl.ranks_per_node, last = std::min(cl.np, first + cl.ranks_per_node) - 1;
    plan.checks.push_back({"host memory", *worst, cl.host_mem,
                           first == last ? fmt::format("node {} (rank {})", node, first)
                           : plan.node_turns[static_cast<size_t>(node)]
                               ? fmt::format("node {} (ranks {}-{} taking memory turns)", node, first, last)
                               : fmt::format("node {} (ranks {}-{} at their peaks)", node, first, last)});
  }
  if (cl.gpu_mem > 0 && in.device == ComputeDevice::Cuda) {
    const auto worst = std::max_element(plan.ranks.begin(), plan.ranks.end(), [](const auto& a, const auto& b) {
      return a.peak_device < b.peak_device;
    });
    plan.checks.push_back({"GPU memory", worst->peak_device, cl.gpu_mem,
                           fmt::format("rank {} ({})", worst->rank, worst->peak_device_phase)});
  }
  if (cl.disk > 0)
    plan.checks.push_back({"disk", plan.work_dir_bytes + plan.output_bytes, cl.disk, "work directory + output file"});
  return plan;
}

// Plans `candidate`; true when it is a valid layout and everything fits.
bool try_fix(const ModelConfig& config, const PlanInputs& candidate, const OpRates& rates, ClusterPlan& out) {
  try {
    out = evaluate(config, candidate, rates);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::Usage) return false;
    throw;
  }
  return out.fits();
}

std::string effect_of(const ClusterPlan& p, const PlanInputs& in) {
  std::string s = fmt::format("host {} per node", format_bytes(static_cast<double>(
                                                       *std::max_element(p.node_host.begin(), p.node_host.end()))));
  if (in.device == ComputeDevice::Cuda) s += fmt::format(", GPU {}", format_bytes(static_cast<double>(p.peak_device)));
  s += fmt::format(", {} node(s), about {}", p.nodes, format_seconds(p.times.total));
  return s;
}

int unit_of(const QuantizeOptions& job, int replicas) {
  return replicas * std::lcm(job.batch, job.samples_per_block);
}

void find_fixes(const ModelConfig& config, const PlanInputs& in, const OpRates& rates, ClusterPlan& plan) {
  bool host = false, device = false, disk = false;
  for (const auto& c : plan.checks) {
    if (c.ok()) continue;
    if (c.what == "host memory") host = true;
    if (c.what == "GPU memory") device = true;
    if (c.what == "disk") disk = true;
  }
  if (!host && !device && !disk) return;
  ClusterPlan p;
  const auto& job = in.job;
  const int replicas = job.replicas;
  const int stages = plan.stages;

  // The largest value of one option, counting down from its current one to
  // `lowest`, whose plan fits: offered as a fix.
  auto lower_until_it_fits = [&](const char* option, int current, int lowest, auto set) {
    for (int v = current - 1; v >= lowest; --v) {
      PlanInputs c = in;
      set(c.job, v);
      if (try_fix(config, c, rates, p)) {
        plan.fixes.push_back({fmt::format("{} {}", option, v), effect_of(p, c)});
        return;
      }
    }
  };
  // Fewer measure/pack workers: each holds one linear's working set.
  lower_until_it_fits("--threads", job.threads, 1, [](QuantizeOptions& j, int v) { j.threads = v; });
  // Fewer loss-sensitivity probe windows (0: no probes; the searches then
  // weigh every linear alike): the probe phase holds a chunk of probes.
  if (host)
    lower_until_it_fits("--sensitivity-windows", job.sensitivity_windows, 0,
                        [](QuantizeOptions& j, int v) { j.sensitivity_windows = v; });
  // Fewer Hessian tree nodes per layer: larger accumulation blocks.
  if (host) {
    const int share = job.calib_spec.num_samples / replicas;
    for (int spb = job.samples_per_block + 1; spb <= share; ++spb) {
      if (replicas > 1 && job.calib_spec.num_samples % (replicas * std::lcm(job.batch, spb)) != 0) continue;
      PlanInputs c = in;
      c.job.samples_per_block = spb;
      if (try_fix(config, c, rates, p)) {
        plan.fixes.push_back({fmt::format("--samples-per-block {}", spb),
                              effect_of(p, c) + " (statistics then differ in rounding from runs with another value)"});
        break;
      }
    }
    // Fewer calibration samples: smaller activations and shares.
    const int unit = unit_of(job, replicas);
    for (int s = (job.calib_spec.num_samples - 1) / unit * unit; s >= unit; s -= unit) {
      PlanInputs c = in;
      c.job.calib_spec.num_samples = s;
      if (try_fix(config, c, rates, p)) {
        plan.fixes.push_back({fmt::format("--calib-samples {}", s), effect_of(p, c)});
        break;
      }
    }
  }
  // More pipeline stages: fewer layers per rank (the same replicas), in whole nodes.
  const int np_step = std::lcm(replicas, std::min(in.cluster.ranks_per_node, in.cluster.np));
  for (int np = (in.cluster.np / np_step + 1) * np_step; np / replicas <= config.num_layers; np += np_step) {
    PlanInputs c = in;
    c.cluster.np = np;
    c.job.layers_per_rank = 0;
    if (try_fix(config, c, rates, p)) {
      plan.fixes.push_back({fmt::format("--np {}{}", np, job.layers_per_rank > 0 ? " without --layers-per-rank" : ""),
                            effect_of(p, c)});
      break;
    }
  }
  // More replicas of the same stages: smaller calibration shares per rank.
  for (int r = replicas + 1; r * stages <= std::max(in.cluster.np * 8, 64); ++r) {
    if (job.calib_spec.num_samples % unit_of(job, r) != 0) continue;
    PlanInputs c = in;
    c.job.replicas = r;
    c.cluster.np = r * stages;
    if (try_fix(config, c, rates, p)) {
      plan.fixes.push_back({fmt::format("--replicas {} --np {}", r, r * stages), effect_of(p, c)});
      break;
    }
  }
  // Memory turns, when the user turned them off.
  if (host && job.memory_turns == TurnMode::Off) {
    PlanInputs c = in;
    c.job.memory_turns = TurnMode::On;
    if (try_fix(config, c, rates, p)) plan.fixes.push_back({"--memory-turns auto", effect_of(p, c)});
  }
  // Fewer ranks per node (host memory is per node).
  if (host && in.cluster.ranks_per_node > 1) {
    for (int k = std::min(in.cluster.ranks_per_node, in.cluster.np) - 1; k >= 1; --k) {
      PlanInputs c = in;
      c.cluster.ranks_per_node = k;
      if (try_fix(config, c, rates, p)) {
        plan.fixes.push_back({fmt::format("--ranks-per-node {}", k), effect_of(p, c)});
        break;
      }
    }
  }
  // The hardware it would take as planned.
  for (const auto& c : plan.checks) {
    if (c.ok()) continue;
    const double gib = std::ceil(static_cast<double>(c.need) / static_cast<double>(1ll << 30));
    if (c.what == "host memory") plan.fixes.push_back({fmt::format("--host-mem {:.0f}GiB", gib), "host memory per node as planned"});
    if (c.what == "GPU memory") plan.fixes.push_back({fmt::format("--gpu-mem {:.0f}GiB", gib), "a GPU this large, as planned"});
    if (c.what == "disk") plan.fixes.push_back({fmt::format("--disk {:.0f}GiB", gib), "free disk for the work directory and output"});
  }
  // Options alone that fix nothing: say so, then try the least-memory settings together.
  const bool only_hardware = std::all_of(plan.fixes.begin(), plan.fixes.end(), [](const PlanFix& f) {
    return f.options.starts_with("--host-mem") || f.options.starts_with("--gpu-mem") || f.options.starts_with("--disk");
  });
  if (!only_hardware) return;
  PlanInputs c = in;
  c.job.threads = 1;
  const int share = job.calib_spec.num_samples / replicas;
  c.job.samples_per_block = share;
  if (replicas > 1 && job.calib_spec.num_samples % (replicas * std::lcm(job.batch, share)) != 0)
    c.job.samples_per_block = job.samples_per_block;
  // The fewest nodes that fit, at the most ranks per node that do; with the
  // sensitivity probes as asked, else without them.
  const int max_np = replicas * config.num_layers;
  std::vector<int> windows_options = {job.sensitivity_windows};
  if (job.sensitivity_windows > 0) windows_options.push_back(0);
  for (int windows : windows_options) {
    c.job.sensitivity_windows = windows;
    for (int nodes = plan.nodes; (nodes - 1) * 1 < max_np; ++nodes) {
      for (int per_node = in.cluster.ranks_per_node; per_node >= 1; --per_node) {
        const int np = nodes * per_node;
        if (np % replicas != 0 || np > max_np || np < in.cluster.np / 8) continue;
        c.cluster.np = np;
        c.cluster.ranks_per_node = per_node;
        c.job.layers_per_rank = 0;
        if (try_fix(config, c, rates, p)) {
          std::string options = fmt::format("--threads 1 --samples-per-block {} --np {}", c.job.samples_per_block, np);
          if (per_node != in.cluster.ranks_per_node) options += fmt::format(" --ranks-per-node {}", per_node);
          if (windows != job.sensitivity_windows) options += fmt::format(" --sensitivity-windows {}", windows);
          plan.fixes.insert(plan.fixes.begin(), PlanFix{options, effect_of(p, c) + " (no single option is enough)"});
          return;
        }
      }
      if (nodes > 4 * plan.nodes + 64) break;
    }
  }
  plan.no_fix = "no option tried (threads, sensitivity windows, samples per block, calibration samples, ranks, "
                "replicas, ranks per node, alone or least-memory together) makes it fit; only the hardware above does";
}

std::string bytes(int64_t b) { return format_bytes(static_cast<double>(b)); }

}  // namespace

bool ClusterPlan::fits() const {
  return std::all_of(checks.begin(), checks.end(), [](const PlanCheck& c) { return c.ok(); });
}

ClusterPlan make_plan(const ModelConfig& config, const PlanInputs& in, const OpRates& rates, bool fixes) {
  ClusterPlan plan = evaluate(config, in, rates);
  if (fixes) find_fixes(config, in, rates, plan);
  return plan;
}

std::string format_plan(const ModelConfig& config, const PlanInputs& in, const ClusterPlan& plan,
                        const OpRates& rates) {
  const auto& job = in.job;
  const ParameterCount pc = count_parameters(config);
  const bool cuda = in.device == ComputeDevice::Cuda;
  std::string out;
  out += fmt::format("model       {} layers, hidden {}, intermediate {}, {}/{} heads of {}, vocab {}: {} params ({} weights)\n",
                     config.num_layers, config.hidden_size, config.intermediate_size, config.num_heads,
                     config.num_kv_heads, config.head_dim, config.vocab_size, with_commas(pc.total()),
                     in.weight_bytes == 4 ? "fp32" : "16-bit");
  out += fmt::format("layout      {} rank(s) = {} replica(s) x {} stage(s) on {} node(s) of {} rank(s); backend {}, "
                     "{} thread(s) per rank\n",
                     in.cluster.np, job.replicas, plan.stages, plan.nodes, std::min(in.cluster.ranks_per_node, in.cluster.np),
                     cuda ? "cuda" : "cpu", job.threads);
  out += fmt::format("run         {} samples x {} tokens (batch {}, {} per Hessian block); recipes '{}' ({} specs x {} "
                     "ranks), {} + {}, {} to {:.2f} bpw, --sequential {}\n",
                     job.calib_spec.num_samples, job.calib_spec.seqlen, job.batch, job.samples_per_block,
                     in.space.name, in.space.specs.size(), in.space.ranks.size(), job.quantizer_name(),
                     lowrank_method_name(job.lowrank), job.search, job.target_bpw, sequential_option(job.sequential));
  out += fmt::format("memory      predict_resources (docs/DISTRIBUTED.md), as the run logs it; runtime {} before any "
                     "work\n",
                     bytes(plan.resources.runtime_bytes));
  out += fmt::format("rates       {}\n", fmt::join(rates.described, "; "));

  // One row per rank, or per run of ranks with the same row.
  struct Row {
    std::vector<int> ranks;
    std::string stage, layers, text;
  };
  std::vector<Row> rows;
  for (size_t i = 0; i < plan.ranks.size(); ++i) {
    const auto& r = plan.ranks[i];
    const auto& t = plan.times.ranks[i];
    std::string text = fmt::format("{:>10} {:<22}", bytes(r.peak_host), r.peak_phase);
    if (cuda) text += fmt::format(" {:>10} {:<16}", bytes(r.peak_device), r.peak_device_phase);
    text += fmt::format(" {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}", bytes(r.work_dir_bytes), bytes(r.bytes_sent),
                        format_seconds(t.calibrate.seconds), format_seconds(t.measure.seconds),
                        format_seconds(t.pack.seconds), format_seconds(t.write.seconds), format_seconds(t.wait));
    const std::string key = fmt::format("{} {}", r.layers.size(), text);
    const bool group = plan.ranks.size() > 16;
    if (group && !rows.empty() && rows.back().text == key) {
      rows.back().ranks.push_back(r.rank);
      rows.back().layers = fmt::format("{} each", r.layers.size());
      continue;
    }
    rows.push_back({{r.rank}, std::to_string(r.stage), fmt::format("[{}, {})", r.layers.first, r.layers.end), key});
  }
  out += "\n";
  std::string head = fmt::format("{:<8} {:<10} {:>10} {:<22}", "rank", "layers", "host peak", "(phase)");
  if (cuda) head += fmt::format(" {:>10} {:<16}", "GPU peak", "(phase)");
  head += fmt::format(" {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}", "work dir", "sends", "calibrate", "measure",
                      "pack", "write", "waits");
  out += head + "\n";
  for (const auto& row : rows) {
    const std::string text = row.text.substr(row.text.find(' ') + 1);
    out += fmt::format("{:<8} {:<10} {}\n", ranks_text(row.ranks), row.layers, text);
  }

  const auto& jt = plan.times;
  out += fmt::format("\ntime        {} in all: calibrate + measure {}, search {}, pack {}, write {}\n",
                     format_seconds(jt.total), format_seconds(jt.measure_pass), format_seconds(jt.search),
                     format_seconds(jt.pack_pass), format_seconds(jt.write));
  out += fmt::format("totals      host peak per node {}; work dir {} at most; output {}; {} sent between ranks\n",
                     bytes(*std::max_element(plan.node_host.begin(), plan.node_host.end())), bytes(plan.work_dir_bytes),
                     bytes(plan.output_bytes), bytes(plan.bytes_sent));
  const auto turning = std::count(plan.node_turns.begin(), plan.node_turns.end(), true);
  if (turning > 0)
    out += fmt::format("turns       memory turns on {} node(s) (--memory-turns {}): their stages walk their statistics "
                       "one at a time, so those ranks also wait for each other, which the times above do not count\n",
                       turning, turn_mode_name(job.memory_turns));
  // Where the slowest rank's time goes.
  const auto slowest = std::max_element(jt.ranks.begin(), jt.ranks.end(),
                                        [](const RankTime& a, const RankTime& b) { return a.busy() < b.busy(); });
  if (slowest != jt.ranks.end()) {
    auto top = [&](const char* name, const StageTime& s) {
      double sum = 0;
      for (const auto& t : s.terms) sum += t.seconds;
      if (!(sum > 0)) return;
      std::string items;
      for (size_t i = 0; i < s.terms.size() && i < 4; ++i)
        items += fmt::format("{}{} {:.0f}%", i ? ", " : "", s.terms[i].name, 100 * s.terms[i].seconds / sum);
      out += fmt::format("  {:<10} {}\n", name, items);
    };
    out += fmt::format("where rank {}'s time goes (share of its work per stage):\n", slowest->rank);
    top("calibrate", slowest->calibrate);
    top("measure", slowest->measure);
    top("pack", slowest->pack);
  }

  out += "\n";
  if (plan.checks.empty()) {
    out += "verdict     no limits given (--host-mem, --gpu-mem, --disk): nothing checked\n";
    return out;
  }
  out += plan.fits() ? "verdict     FITS\n" : "verdict     DOES NOT FIT\n";
  for (const auto& c : plan.checks)
    out += fmt::format("  {:<12} {} {} of {} ({})\n", c.what, c.ok() ? "ok  " : "OVER", bytes(c.need), bytes(c.have),
                       c.where);
  if (!plan.fits()) {
    out += plan.fixes.empty() ? "" : "fixes (each line alone makes it fit; computed by planning it again):\n";
    for (const auto& f : plan.fixes) out += fmt::format("  {:<36} {}\n", f.options, f.effect);
    if (!plan.no_fix.empty()) out += fmt::format("  {}\n", plan.no_fix);
  }
  return out;
}

nlohmann::ordered_json plan_json(const ModelConfig& config, const PlanInputs& in, const ClusterPlan& plan,
                                 const OpRates& rates) {
  const auto& job = in.job;
  nlohmann::ordered_json j;
  j["layout"] = {{"np", in.cluster.np},
                 {"replicas", job.replicas},
                 {"stages", plan.stages},
                 {"nodes", plan.nodes},
                 {"ranks_per_node", in.cluster.ranks_per_node},
                 {"backend", in.device == ComputeDevice::Cuda ? "cuda" : "cpu"},
                 {"threads", job.threads}};
  j["run"] = {{"calib_samples", job.calib_spec.num_samples},
              {"calib_seqlen", job.calib_spec.seqlen},
              {"batch", job.batch},
              {"samples_per_block", job.samples_per_block},
              {"recipes", in.space.name},
              {"specs", in.space.specs.size()},
              {"ranks", in.space.ranks},
              {"lowrank", lowrank_method_name(job.lowrank)},
              {"quantizer", job.quantizer_name()},
              {"search", job.search},
              {"target_bpw", job.target_bpw},
              {"sequential", sequential_mode_name(job.sequential)},
              {"weight_bytes", in.weight_bytes},
              {"runtime_bytes", plan.resources.runtime_bytes}};
  j["rates"] = {{"sources", rates.sources}, {"machine", rates.machine}, {"measured", rates.measured}};
  auto& ranks = j["ranks"] = nlohmann::ordered_json::array();
  for (size_t i = 0; i < plan.ranks.size(); ++i) {
    const auto& r = plan.ranks[i];
    const auto& t = plan.times.ranks[i];
    auto phases = nlohmann::ordered_json::array();
    for (const auto& p : r.phases) {
      auto terms = nlohmann::ordered_json::array();
      for (const auto& term : p.terms) terms.push_back({{"name", term.name}, {"bytes", term.bytes}});
      phases.push_back({{"phase", p.phase}, {"bytes", p.total()}, {"terms", terms}});
    }
    auto device_phases = nlohmann::ordered_json::array();
    for (const auto& p : r.device_phases) {
      auto terms = nlohmann::ordered_json::array();
      for (const auto& term : p.terms) terms.push_back({{"name", term.name}, {"bytes", term.bytes}});
      device_phases.push_back({{"phase", p.phase}, {"bytes", p.total()}, {"terms", terms}});
    }
    auto stage = [](const StageTime& s) {
      auto terms = nlohmann::ordered_json::array();
      for (const auto& term : s.terms) terms.push_back({{"name", term.name}, {"seconds", term.seconds}});
      return nlohmann::ordered_json{{"seconds", s.seconds}, {"work_by_operation", terms}};
    };
    ranks.push_back({{"rank", r.rank},
                     {"stage", r.stage},
                     {"replica", r.replica},
                     {"layers", {r.layers.first, r.layers.end}},
                     {"samples", r.samples},
                     {"peak_host_bytes", r.peak_host},
                     {"peak_host_phase", r.peak_phase},
                     {"host_phases", phases},
                     {"peak_device_bytes", r.peak_device},
                     {"peak_device_phase", r.peak_device_phase},
                     {"device_phases", device_phases},
                     {"work_dir_bytes", r.work_dir_bytes},
                     {"bytes_sent", r.bytes_sent},
                     {"seconds",
                      {{"calibrate", t.calibrate.seconds},
                       {"measure", t.measure.seconds},
                       {"pack", t.pack.seconds},
                       {"write", t.write.seconds},
                       {"wait", t.wait}}},
                     {"stages", {{"calibrate", stage(t.calibrate)}, {"measure", stage(t.measure)},
                                 {"pack", stage(t.pack)}, {"write", stage(t.write)}}}});
  }
  j["job"] = {{"seconds",
               {{"measure_pass", plan.times.measure_pass},
                {"search", plan.times.search},
                {"pack_pass", plan.times.pack_pass},
                {"write", plan.times.write},
                {"total", plan.times.total}}},
              {"node_host_bytes", plan.node_host},
              {"node_memory_turns", plan.node_turns},
              {"peak_device_bytes", plan.peak_device},
              {"work_dir_bytes", plan.work_dir_bytes},
              {"output_bytes", plan.output_bytes},
              {"bytes_sent", plan.bytes_sent}};
  auto checks = nlohmann::ordered_json::array();
  for (const auto& c : plan.checks)
    checks.push_back({{"what", c.what}, {"ok", c.ok()}, {"need_bytes", c.need}, {"have_bytes", c.have}, {"where", c.where}});
  auto fixes = nlohmann::ordered_json::array();
  for (const auto& f : plan.fixes) fixes.push_back({{"options", f.options}, {"effect", f.effect}});
  j["verdict"] = {{"fits", plan.fits()}, {"checked", !plan.checks.empty()}, {"checks", checks}, {"fixes", fixes}};
  if (!plan.no_fix.empty()) j["verdict"]["no_fix"] = plan.no_fix;
  (void)config;
  return j;
}

int64_t parse_size_option(const std::string& text, const std::string& option) {
  const std::optional<uint64_t> bytes = parse_byte_size(text);
  if (!bytes || *bytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    AMLQ_FAIL(Usage, "{} {}: not a size (e.g. 80GiB, 512GiB, 1.5TB)", option, text);
  return static_cast<int64_t>(*bytes);
}

}  // namespace amlq
