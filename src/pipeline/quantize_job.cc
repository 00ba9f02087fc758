#include "pipeline/quantize_job.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/memory.h"
#include "core/parallel.h"
#include "core/timer.h"
#include "io/hdf5/quantized_model.h"
#include "io/json_value.h"
#include "io/tokenizer/dataset.h"
#include "io/tokenizer/tokenizer.h"
#include "model/model_weights.h"
#include "model/perplexity.h"
#include "pipeline/distributed.h"
#include "pipeline/input_hash.h"
#include "pipeline/json_checkpoint.h"
#include "pipeline/layer_passes.h"
#include "pipeline/plan_validation.h"
#include "pipeline/resources.h"
#include "pipeline/sensitivity.h"
#include "pipeline/stages.h"
#include "pipeline/topology.h"

namespace amlq {

namespace {

namespace fs = std::filesystem;

constexpr const char* kMeasureTableKind = "amlq-measurements";
constexpr const char* kPlanKind = "amlq-plan";
constexpr const char* kSensitivityKind = "amlq-sensitivity";
constexpr const char* kValidationKind = "amlq-validation";

struct RunContext {
  const QuantizeOptions& options;
  ModelConfig config;
  Checkpoint checkpoint;
  std::string model_hash;
  WorkDir work;
};

std::string hash_of(std::initializer_list<std::string> parts) {
  Hasher h;
  for (const auto& p : parts) h.update(p).update(std::string_view("\x1f"));
  return h.hex();
}

std::vector<int32_t> load_ids(const std::string& model_dir, const std::string& data, int vocab_size) {
  // Id files need no tokenizer; text is tokenized with the model's own.
  std::unique_ptr<Tokenizer> tokenizer;
  if (!is_token_id_file(data)) tokenizer = load_tokenizer(model_dir);
  return load_token_ids(data, tokenizer.get(), vocab_size);
}

// The held-out windows plan validation scores: --validate-data's, or the
// calibration data's after the calibration and probe windows.
std::vector<std::vector<int32_t>> validation_windows(const QuantizeOptions& options, int vocab_size) {
  if (!options.validate_data.empty())
    return separate_windows(load_ids(options.model, options.validate_data, vocab_size), options.calib_spec,
                            options.validate_windows, options.validation_seqlen(), options.validate_data);
  return held_out_windows(load_ids(options.model, options.calib, vocab_size), options.calib_spec,
                          options.sensitivity_windows, options.validate_windows, "--validate-windows",
                          options.validation_seqlen());
}

// Rank 0 decides, everybody follows: a checkpoint is either reused by all ranks or by none.
bool agree(const Communicator& world, bool decision_on_rank0) {
  uint8_t flag = decision_on_rank0 ? 1 : 0;
  world.broadcast(std::as_writable_bytes(std::span(&flag, 1)), 0);
  return flag != 0;
}

void inject_failure(const QuantizeOptions& options, const Communicator& world, const char* stage) {
  if (options.debug_fail_rank == world.rank() && options.debug_fail_stage == stage)
    AMLQ_FAIL(Internal, "injected failure on rank {} in stage {} (--debug-fail-rank)", world.rank(), stage);
}

// A checkpoint that exists but cannot be used is worth a warning naming it (the
// stage is recomputed): damaged, or made from other inputs (changed options, or a
// file from another run copied in). A missing one is normal.
void report_check(const CheckpointCheck& check) {
  if (check.state == CheckpointCheck::State::Damaged || check.state == CheckpointCheck::State::Stale)
    AMLQ_LOG_WARN("{}: recomputing", check.reason);
}

// FP perplexity is computed once per (model, data, window) and kept in a cache
// shared by all runs: $AMLQ_CACHE_DIR, $XDG_CACHE_HOME/amlq or ~/.cache/amlq.
std::string fp_cache_path(const std::string& key) {
  std::string dir;
  if (const char* d = std::getenv("AMLQ_CACHE_DIR"); d && *d) {
    dir = d;
  } else if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) {
    dir = std::string(x) + "/amlq";
  } else if (const char* home = std::getenv("HOME"); home && *home) {
    dir = std::string(home) + "/.cache/amlq";
  } else {
    return "";
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return "";
  return dir + "/fp-ppl-" + key + ".json";
}

EvalSummary evaluate(Backend& backend, RunContext& ctx, const std::string& quantized_path, double& seconds) {
  const auto& options = ctx.options;
  Timer timer;
  EvalSummary summary;
  summary.data = options.eval;
  summary.seqlen = options.eval_seqlen;
  const auto ids = load_ids(options.model, options.eval, ctx.config.vocab_size);
  const int batch = std::max(1, options.batch);

  const std::string key = hash_of({ctx.model_hash, hash_data_file(options.eval), std::to_string(options.eval_seqlen),
                                   std::to_string(options.eval_max_windows), std::to_string(batch)});
  std::string cache = fp_cache_path(key);
  if (cache.empty()) cache = ctx.work.fp_eval();
  CheckpointCheck check;
  if (const auto cached = read_checkpoint_json(cache, "amlq-fp-perplexity", key, check)) {
    summary.fp_ppl = cached->at("ppl").get<double>();
    summary.fp_nll = cached->at("mean_nll").get<double>();
    AMLQ_LOG_INFO("eval: FP perplexity {:.4f} (cached in {})", summary.fp_ppl, cache);
  } else {
    report_check(check);
    AMLQ_LOG_INFO("eval: FP model on {} (seqlen {})", options.eval, options.eval_seqlen);
    const ModelWeights fp = load_model_weights(ctx.checkpoint, ctx.config, 0, ctx.config.num_layers, true, true);
    const auto r = evaluate_perplexity(backend, fp, ids, options.eval_seqlen, options.eval_max_windows, batch);
    summary.fp_ppl = r.ppl;
    summary.fp_nll = r.mean_nll;
    try {
      write_checkpoint_json(cache, "amlq-fp-perplexity", key,
                            {{"ppl", r.ppl}, {"mean_nll", r.mean_nll}, {"windows", r.windows},
                             {"model", options.model}, {"data", options.eval}});
    } catch (const Error& e) {
      AMLQ_LOG_WARN("could not cache the FP perplexity: {}", e.what());
    }
  }
  AMLQ_LOG_INFO("eval: quantized model {}", quantized_path);
  const ModelWeights q = load_quantized_model_weights(quantized_path);
  const auto r = evaluate_perplexity(backend, q, ids, options.eval_seqlen, options.eval_max_windows, batch);
  summary.quantized_ppl = r.ppl;
  summary.quantized_nll = r.mean_nll;
  summary.windows = r.windows;
  summary.scored_tokens = r.scored_tokens;
  seconds = timer.seconds();
  return summary;
}

QuantizeReport build_report(const RunContext& ctx, const std::string& calibration, const MeasurementTable& table,
                            const SearchResult& plan, const QuantizedModel& packed) {
  const auto& options = ctx.options;
  QuantizeReport report;
  report.model = options.model;
  report.out = options.out;
  report.calibration = calibration;
  report.search = options.search;
  report.quantizer = options.quantizer_name();
  report.lowrank = lowrank_method_name(options.lowrank);
  report.recipes = options.recipes;
  report.sequential = sequential_mode_name(options.sequential);
  report.target_bpw = options.target_bpw;
  report.achieved_bpw = packed.header.achieved_bpw;
  for (const auto& row : table) report.candidates += static_cast<int>(row.candidates.size());
  report.predicted_delta_nll = plan.predicted_delta_nll;
  report.loss_weighted = plan.loss_weighted;
  for (size_t i = 0; i < packed.linears.size(); ++i) {
    const auto& l = packed.linears[i];
    ReportLayer r;
    r.name = l.name;
    const auto rest = l.name.substr(std::string("model.layers.").size());
    r.layer = std::stoi(rest.substr(0, rest.find('.')));
    r.linear = rest.substr(rest.find('.') + 1);
    r.numel = static_cast<int64_t>(l.rows) * l.cols;
    r.spec = l.spec.label();
    for (const auto& p : l.parts) r.code_bits += static_cast<double>(p.bits) * (p.col_end - p.col_begin) / l.cols;
    r.rank = l.rank;
    r.bpw = l.bpw;
    r.eps = l.eps;
    r.eps_measured = table[i].candidates[static_cast<size_t>(plan.choice[i])].eps;
    r.alpha = table[i].alpha;
    report.quantized_params += r.numel;
    report.layers.push_back(r);
  }
  return report;
}

// An array of finite numbers, checked (io/json_value.h).
std::vector<double> doubles_field(const nlohmann::json& j, const char* key, const std::string& origin) {
  const auto& a = json_member(j, key, origin);
  if (!a.is_array()) AMLQ_FAIL(Input, "{}: '{}' is not an array", origin, key);
  std::vector<double> out;
  for (const auto& v : a) out.push_back(json_value_as<double>(v, key, origin));
  return out;
}

// " q_proj 0.52 (linearity 1.03), k_proj ...": the median alpha of each linear
// type over the layers, so a user sees where the search will spend bits.
std::string describe_sensitivities(const MeasurementTable& table) {
  std::map<std::string, std::vector<std::pair<double, double>>> by_type;
  std::vector<std::string> order;
  for (const auto& row : table) {
    const std::string type = row.name.substr(row.name.rfind('.') + 1);
    if (!by_type.count(type)) order.push_back(type);
    by_type[type].push_back({row.alpha, row.alpha_linearity});
  }
  std::string out;
  for (const auto& type : order) {
    auto v = by_type[type];
    std::sort(v.begin(), v.end());
    const auto& mid = v[v.size() / 2];
    out += fmt::format(" {} {:.3g} (linearity {:.2f}),", type, mid.first, mid.second);
  }
  if (!out.empty()) out.pop_back();
  return out;
}

// The largest source dtype of the checkpoint's quantized linears, in bytes.
double weight_bytes(const ModelConfig& config, const Checkpoint& checkpoint) {
  const auto linears = decoder_linears(config);
  const std::string name = linear_weight_name(0, linears.front().name);
  return checkpoint.has(name) ? static_cast<double>(dtype_size(checkpoint.info(name).dtype)) : 4.0;
}

// Whether the ranks sharing this host take memory turns (--memory-turns,
// pipeline/memory_turns.h): auto turns them on when together they are predicted
// to need more than the host has. Then, if even that is predicted not to fit,
// say so before hours of work end in the kernel's OOM killer (a warning, not an
// error: the formula is an upper bound, and swap or a looser cgroup may still
// carry the run).
MemoryTurns decide_memory_turns(const QuantizeOptions& options, const Communicator& world, const Topology& topo,
                                const std::vector<RankPrediction>& prediction) {
  const Communicator node = world.split_node_local();
  std::vector<int> on_host;
  for (int64_t r : node.allgather_sizes(world.rank())) on_host.push_back(static_cast<int>(r));
  // The host's memory as its first rank sees it, so that every rank decides alike.
  const int64_t have = node.allgather_sizes(host_memory_bytes()).front();
  const int64_t all_at_once = host_peak(prediction, on_host, false);
  const int64_t with_turns = host_peak(prediction, on_host, true);
  bool turns = options.memory_turns == TurnMode::On;
  if (options.memory_turns == TurnMode::Auto) turns = have > 0 && all_at_once > have && on_host.size() > 1;
  const int64_t need = turns ? with_turns : all_at_once;
  if (node.rank() == 0) {
    if (turns)
      AMLQ_LOG_INFO("memory turns on ({}): the {} rank(s) on this host would need {} at once{}; they walk their "
                    "statistics one pipeline stage at a time, predicted peak {} for the host",
                    options.memory_turns == TurnMode::On ? "--memory-turns on" : "auto", on_host.size(),
                    format_bytes(static_cast<double>(all_at_once)),
                    have > 0 ? fmt::format(", its memory is {}", format_bytes(static_cast<double>(have))) : "",
                    format_bytes(static_cast<double>(with_turns)));
    if (have > 0 && need > have)
      AMLQ_LOG_WARN("the {} rank(s) on this host are predicted to need {} at peak{}, more than its {} of memory: "
                    "expect the OOM killer. Fewer layers or threads per rank, more ranks or --replicas lower it "
                    "(`amlq plan` compares layouts)",
                    on_host.size(), format_bytes(static_cast<double>(need)), turns ? " even taking turns" : "",
                    format_bytes(static_cast<double>(have)));
  }
  MemoryTurns out(world, node, topo.stage, turns);
  // A rank now waits for the whole walk of the stages before it on the host,
  // which can take hours: only a failure notice (or mpirun) ends such a wait,
  // unless the user set a dead-peer timeout explicitly.
  if (out.enabled() && std::getenv("AMLQ_MPI_TIMEOUT") == nullptr)
    set_mpi_wait_timeout(std::numeric_limits<double>::infinity());
  return out;
}

// The allocation picture: --svg, or next to the report, or next to the model.
std::string svg_path_of(const QuantizeOptions& options) {
  if (!options.svg.empty()) return options.svg;
  const std::string base = options.report.empty() ? options.out : options.report;
  return fs::path(base).replace_extension(".svg").string();
}

// Packs every candidate plan into its folder (`dirs`: pack/ for the search's
// own, pack/candidate-K for the others; `hashes` their pack hashes), in one
// walk with --sequential none, runs the validation pass
// (pipeline/plan_validation.h) and returns the index of the plan with the
// lowest held-out NLL, the same on every rank. The result is kept in validation.json, so that a resumed run whose
// output is complete packs nothing again; `packed` says whether the candidates'
// pack checkpoints were (re)made here. Fills report.validation.
int validate_candidates(RunContext& ctx, PassContext& pass, const MeasurementTable& table,
                        const std::vector<SearchResult>& candidates, const std::vector<WorkDir>& dirs,
                        const std::vector<std::string>& hashes, bool reuse, const std::function<void()>& load_samples,
                        bool& packed, QuantizeReport& report) {
  const auto& options = ctx.options;
  const Communicator& world = pass.world;
  const bool coordinator = world.rank() == 0;
  std::string joined;
  for (const auto& h : hashes) joined += h + ",";
  const std::string key = hash_of({joined, "validation", std::to_string(options.validate_windows),
                                   std::to_string(options.sensitivity_windows),
                                   std::to_string(options.validation_seqlen()),
                                   options.validate_data.empty() ? "" : hash_data_file(options.validate_data)});
  std::string payload;  // the checkpoint's, when it can be reused
  if (coordinator && reuse) {
    CheckpointCheck check;
    if (const auto j = read_checkpoint_json(ctx.work.validation(), kValidationKind, key, check))
      payload = j->dump();
    else
      report_check(check);
  }
  world.broadcast_string(payload, 0);
  ValidationResult result;
  packed = payload.empty();
  if (!packed) {
    const auto j = nlohmann::json::parse(payload);
    result.nll = doubles_field(j, "nll", ctx.work.validation());
    result.fp_nll = json_field<double>(j, "fp_nll", ctx.work.validation());
    if (result.nll.size() != candidates.size())
      AMLQ_FAIL(Input, "{}: holds {} plans, expected {}", ctx.work.validation(), result.nll.size(), candidates.size());
    report.resumed.push_back("validation");
    AMLQ_LOG_INFO("validation: reusing {}", ctx.work.validation());
  } else {
    int reused_layers = 0;
    std::vector<PackTarget> targets;
    for (size_t k = 0; k < candidates.size(); ++k) {
      PackTarget t{&candidates[k], dirs[k],
                   [h = hashes[k]](int layer) { return hash_of({h, "layer", std::to_string(layer)}); },
                   std::vector<char>(static_cast<size_t>(ctx.config.num_layers), 0)};
      if (coordinator) t.work.create();
      world.barrier();
      if (reuse) {
        t.done = agree_done_layers(pass, [&](int layer) {
          const auto check = check_seal(t.work.pack_layer(layer), kPackLayerKind, t.layer_hash(layer));
          report_check(check);
          return check.valid();
        });
        for (char d : t.done) reused_layers += d ? 1 : 0;
      }
      targets.push_back(std::move(t));
    }
    load_samples();
    if (options.sequential == SequentialMode::None) {
      // One walk: the statistics once, every plan packed from them.
      AMLQ_LOG_INFO("pack: {} plans in one walk", targets.size());
      pack_pass(pass, table, targets);
    } else {
      // Sequential statistics depend on the plan: a walk per plan.
      for (size_t k = 0; k < targets.size(); ++k) {
        AMLQ_LOG_INFO("pack: plan {} of {}: {}", k + 1, targets.size(), candidates[k].method);
        pack_pass(pass, table, {targets[k]});
        world.barrier();
      }
    }
    world.barrier();
    if (reused_layers > 0)
      report.resumed.push_back(fmt::format("pack ({} of {} layers of {} plans)", reused_layers,
                                           ctx.config.num_layers * candidates.size(), candidates.size()));
    std::vector<std::vector<int32_t>> windows;
    if (pass.topo.replica == 0 && (pass.topo.first_stage() || pass.topo.last_stage()))
      windows = validation_windows(options, ctx.config.vocab_size);
    result = validation_pass(pass, dirs, windows);
    std::vector<std::string> methods;
    for (const auto& c : candidates) methods.push_back(c.method);
    if (coordinator)
      write_checkpoint_json(ctx.work.validation(), kValidationKind, key,
                            {{"nll", result.nll},
                             {"fp_nll", result.fp_nll},
                             {"windows", options.validate_windows},
                             {"methods", methods}});
  }
  // The lowest NLL; a tie keeps the earlier plan (the search's own comes first).
  int chosen = 0;
  for (int k = 1; k < static_cast<int>(candidates.size()); ++k)
    if (result.nll[static_cast<size_t>(k)] < result.nll[static_cast<size_t>(chosen)]) chosen = k;
  report.validation_windows = options.validate_windows;
  report.validation_seqlen = options.validation_seqlen();
  report.validation_data = options.validate_data.empty() ? options.calib : options.validate_data;
  for (size_t k = 0; k < candidates.size(); ++k) {
    const auto& c = candidates[k];
    report.validation.push_back({c.method, c.achieved_bpw, c.predicted_delta_nll, result.nll[k] - result.fp_nll,
                                 static_cast<int>(k) == chosen});
    AMLQ_LOG_INFO("validation: {:<26} {:.4f} bpw  NLL +{:.4f} (predicted +{:.4f}){}", c.method, c.achieved_bpw,
                  result.nll[k] - result.fp_nll, c.predicted_delta_nll, static_cast<int>(k) == chosen ? "  <- kept" : "");
  }
  return chosen;
}

}  // namespace

QuantizeReport run_quantize(Backend& backend, const QuantizeOptions& options, StageLimit limit,
                            const Communicator& world) {
  Timer total;
  const int64_t runtime_rss = read_process_memory().rss;
  AMLQ_REQUIRE(!options.out.empty() || limit != StageLimit::All, "--out is required");
  RunContext ctx{options, load_model_config(options.model), Checkpoint::open(options.model), "",
                 WorkDir{options.resolved_work_dir()}};
  ctx.model_hash = hash_model(ctx.config, ctx.checkpoint);
  set_compute_threads(options.threads);
  const Topology topo =
      make_topology(ctx.config, world.rank(), world.size(), options.replicas, options.layers_per_rank);
  const bool coordinator = world.rank() == 0;
  // A plan file is read once: the space measures what it lists, the search picks it.
  const bool listed_search = options.search.starts_with(kPlanSearchPrefix);
  const std::vector<ListedChoice> listed = listed_search ? listed_plan(options) : std::vector<ListedChoice>{};
  const RecipeSpace space = listed_search ? listed_space(options.search, listed) : measured_space(options);
  // A --validate-data file that cannot give the windows fails now, not after measure and pack.
  if (options.validate_windows > 0 && !options.validate_data.empty() && is_budgeted_search(options.search))
    validation_windows(options, ctx.config.vocab_size);
  ResourceInputs resource_in =
      resource_inputs(options, world.size(), weight_bytes(ctx.config, ctx.checkpoint), space);
  if (runtime_rss > 0) resource_in.runtime_bytes = runtime_rss;
  resource_in.device = backend.name() == "cuda";
  const std::vector<RankPrediction> prediction = predict_resources(ctx.config, resource_in);
  if (coordinator) {
    ctx.work.create();
    // Temporaries of a killed run (SIGKILL, OOM killer, preemption): nothing of
    // this run writes before the barrier below, so they cannot be ours.
    int stray = ctx.work.remove_temporaries();
    for (const std::string& path : {options.out, options.report, svg_path_of(options)})
      if (!path.empty()) stray += remove_stale_temporaries(path);
    if (stray > 0) AMLQ_LOG_WARN("removed {} temporary file(s) left by an interrupted run", stray);
    if (world.size() > 1) {
      std::string blocks;
      for (const auto& b : topo.stage_layers) blocks += fmt::format(" [{}, {})", b.first, b.end);
      AMLQ_LOG_INFO("{} ranks: {} replica(s) x {} pipeline stage(s), layers per stage:{}", world.size(), topo.replicas,
                    topo.stages, blocks);
    }
    AMLQ_LOG_INFO("predicted resources (docs/DISTRIBUTED.md, `amlq plan` for details):\n{}",
                  format_prediction(prediction));
  }
  MemoryTurns turns = decide_memory_turns(options, world, topo, prediction);
  world.barrier();
  QuantizeReport report;
  report.ranks = world.size();
  // A stage subcommand reuses the earlier stages' checkpoints when they match.
  auto reuse = [&](StageLimit stage) {
    return options.resume || (limit != StageLimit::All && static_cast<int>(stage) < static_cast<int>(limit));
  };

  const auto& cs = options.calib_spec;
  const std::string calib_hash = hash_of(
      {ctx.model_hash, hash_data_file(options.calib), std::to_string(cs.num_samples), std::to_string(cs.seqlen),
       std::to_string(cs.seed), std::to_string(cs.random_offsets), std::to_string(options.samples_per_block),
       std::to_string(options.batch)});
  const std::string calibration =
      fmt::format("{}: {}", fs::path(options.calib).filename().string(), options.calib_spec.describe());

  // The pipeline context: this rank's calibration samples (ids on the first stage only).
  const Communicator stage_replicas = world.split(topo.stage, topo.replica);
  PassContext pass{backend, options, ctx.config, ctx.checkpoint, topo, world, stage_replicas,
                   replica_samples(options.calib_spec.num_samples, topo.replicas, topo.replica, options.batch,
                                   options.samples_per_block),
                   {}, ctx.work, {}, std::move(turns)};
  auto load_samples = [&] {
    if (!topo.first_stage() || !pass.samples.empty()) return;
    const auto ids = load_ids(options.model, options.calib, ctx.config.vocab_size);
    auto all = sample_calibration(ids, options.calib_spec);
    pass.samples.assign(all.begin() + pass.share.first, all.begin() + pass.share.end);
    AMLQ_LOG_INFO("calibration: {} from {} ({} ids){}", options.calib_spec.describe(), options.calib, ids.size(),
                  topo.replicas > 1 ? fmt::format(", samples [{}, {}) on replica {}", pass.share.first,
                                                  pass.share.end, topo.replica)
                                    : "");
  };

  // `amlq calibrate`: per-layer statistics written to <work>/calib/ (for analysis
  // and `amlq layer`); the quantize pipeline itself never stores them.
  if (limit == StageLimit::Calibrate) {
    inject_failure(options, world, "calibrate");
    Timer stage;
    if (coordinator) {
      std::error_code ec;
      fs::create_directories(ctx.work.root + "/calib", ec);
      if (ec) AMLQ_FAIL(Output, "{}/calib: cannot create: {}", ctx.work.root, ec.message());
    }
    world.barrier();
    auto layer_hash = [&](int layer) { return hash_of({calib_hash, "statistics", std::to_string(layer)}); };
    std::vector<char> done(static_cast<size_t>(ctx.config.num_layers), 0);
    if (options.resume)
      done = agree_done_layers(pass, [&](int layer) {
        const auto check = check_seal(ctx.work.calib_layer(layer), kCalibLayerKind, layer_hash(layer));
        report_check(check);
        return check.valid();
      });
    load_samples();
    measure_pass(pass, space, layer_hash, done, true);
    world.barrier();
    report.seconds.calibrate = stage.seconds();
    AMLQ_LOG_INFO("calibrate: statistics in {}/calib ({:.1f}s)", ctx.work.root, stage.seconds());
    return report;
  }

  // 1-2. calibrate + measure, streamed layer by layer; rows gathered on rank 0.
  inject_failure(options, world, "calibrate");
  std::string space_text;
  for (const auto& s : space.specs) space_text += s.label() + ",";
  for (int r : space.ranks) space_text += "r" + std::to_string(r) + ",";
  // Row sampling and approximate errors change the measurements; the defaults
  // add nothing, so full-row exact checkpoints keep their hashes.
  if (options.measure_rows < 1)
    space_text += fmt::format("measure-rows {:.17g} min {},", options.measure_rows, options.measure_rows_min);
  if (options.measure_errors == ErrorMode::Approximate) space_text += "measure-errors approx,";
  const std::string measure_hash =
      hash_of({calib_hash, space_text, options.quantizer_name(), lowrank_method_name(options.lowrank),
               factor_format_name(options.factor_format), fmt::format("{} {}", options.gptq.damp, options.gptq.block_size)});
  auto measure_layer_hash = [&](int layer) { return hash_of({measure_hash, "layer", std::to_string(layer)}); };
  const std::string measure_path = ctx.work.measure_table();
  Timer stage;
  MeasurementTable table;
  bool measure_reused = false;
  if (coordinator && reuse(StageLimit::Measure)) {
    CheckpointCheck check;
    if (const auto payload = read_checkpoint_json(measure_path, kMeasureTableKind, measure_hash, check)) {
      table = table_from_json(*payload, measure_path);
      measure_reused = true;
    } else {
      report_check(check);
    }
  }
  measure_reused = agree(world, measure_reused);
  if (measure_reused) {
    report.resumed.push_back("calibrate");
    report.resumed.push_back("measure");
    AMLQ_LOG_INFO("measure: reusing {}", measure_path);
  } else {
    std::vector<char> done(static_cast<size_t>(ctx.config.num_layers), 0);
    if (reuse(StageLimit::Measure)) {
      done = agree_done_layers(pass, [&](int layer) {
        CheckpointCheck check;
        const bool ok = read_checkpoint_json(ctx.work.measure_layer(layer), kMeasureLayerKind,
                                             measure_layer_hash(layer), check)
                            .has_value();
        report_check(check);
        return ok;
      });
      int reused_layers = 0;
      for (char d : done) reused_layers += d ? 1 : 0;
      if (reused_layers > 0) {
        report.resumed.push_back(fmt::format("measure ({} of {} layers)", reused_layers, ctx.config.num_layers));
        AMLQ_LOG_INFO("measure: {} of {} layers already measured", reused_layers, ctx.config.num_layers);
      }
    }
    AMLQ_LOG_INFO("measure: recipe space '{}' ({} specs x {} ranks)", space.name, space.specs.size(),
                  space.ranks.size());
    load_samples();
    const auto rows = measure_pass(pass, space, measure_layer_hash, done, false);
    nlohmann::json message = nlohmann::json::array();
    for (const auto& [layer, layer_rows] : rows) message.push_back({layer, table_to_json(layer_rows)});
    const std::string blob = message.dump();
    const auto blobs = world.gather_bytes(std::as_bytes(std::span(blob.data(), blob.size())), 0);
    if (coordinator) {
      std::vector<MeasurementTable> by_layer(static_cast<size_t>(ctx.config.num_layers));
      for (const auto& b : blobs)
        for (const auto& entry : nlohmann::json::parse(std::string(reinterpret_cast<const char*>(b.data()), b.size())))
          by_layer.at(entry.at(0).get<size_t>()) = table_from_json(entry.at(1), "measurement message");
      for (auto& layer_rows : by_layer) {
        AMLQ_ASSERT(!layer_rows.empty(), "a layer's measurements did not reach rank 0");
        for (auto& row : layer_rows) table.push_back(std::move(row));
      }
      write_checkpoint_json(measure_path, kMeasureTableKind, measure_hash, table_to_json(table));
      AMLQ_LOG_INFO("measure: {} linears from {} rank(s) -> {} ({:.1f}s)", table.size(), world.size(), measure_path,
                    stage.seconds());
    }
  }
  report.seconds.calibrate = pass.times.forward + pass.times.statistics;
  report.seconds.measure = stage.seconds() - report.seconds.calibrate;

  // 2b. loss sensitivity per linear (pipeline/sensitivity.h), for the weighted
  // searches and the report's predicted loss increase.
  if (options.sensitivity_windows > 0) {
    Timer sensitivity_timer;
    const std::string sensitivity_hash =
        hash_of({calib_hash, "sensitivity", std::to_string(options.sensitivity_windows),
                 fmt::format("{:.17g} {:.17g}", kProbeEnergies[0], kProbeEnergies[1])});
    std::vector<double> alpha, linearity;
    bool reused = false;
    if (coordinator && reuse(StageLimit::Measure)) {
      CheckpointCheck check;
      if (const auto payload =
              read_checkpoint_json(ctx.work.sensitivity(), kSensitivityKind, sensitivity_hash, check)) {
        alpha = doubles_field(*payload, "alpha", ctx.work.sensitivity());
        linearity = doubles_field(*payload, "linearity", ctx.work.sensitivity());
        reused = alpha.size() == table.size() && linearity.size() == table.size();
        if (!reused) AMLQ_LOG_WARN("{}: holds {} linears, the model {}: recomputing", ctx.work.sensitivity(),
                                   alpha.size(), table.size());
      } else {
        report_check(check);
      }
    }
    reused = agree(world, reused);
    if (reused) {
      report.resumed.push_back("sensitivity");
      AMLQ_LOG_INFO("sensitivity: reusing {}", ctx.work.sensitivity());
    } else {
      std::vector<std::vector<int32_t>> windows;
      if (topo.replica == 0 && (topo.first_stage() || topo.last_stage()))
        windows = probe_windows(load_ids(options.model, options.calib, ctx.config.vocab_size), cs,
                                options.sensitivity_windows);
      AMLQ_LOG_INFO("sensitivity: noise probes of every linear on {} held-out window(s) of {} tokens",
                    options.sensitivity_windows, cs.seqlen);
      const SensitivityResult r = sensitivity_pass(pass, windows);
      alpha = r.alpha;
      linearity = r.linearity;
      if (coordinator) {
        if (r.floored > 0)
          AMLQ_LOG_WARN("sensitivity: {} of {} linears measured alpha <= 1% of the median (probe noise); raised to "
                        "that floor",
                        r.floored, alpha.size());
        write_checkpoint_json(ctx.work.sensitivity(), kSensitivityKind, sensitivity_hash,
                              {{"alpha", alpha}, {"linearity", linearity}, {"fp_nll", r.fp_nll},
                               {"windows", options.sensitivity_windows}, {"energies", kProbeEnergies}});
      }
    }
    if (coordinator) {
      AMLQ_ASSERT(alpha.size() == table.size(), "{} sensitivities for {} linears", alpha.size(), table.size());
      for (size_t i = 0; i < table.size(); ++i) {
        table[i].alpha = alpha[i];
        table[i].alpha_linearity = linearity[i];
      }
      AMLQ_LOG_INFO("sensitivity: alpha per linear type (median over layers):{}", describe_sensitivities(table));
    }
    report.seconds.sensitivity = sensitivity_timer.seconds();
  }
  if (limit == StageLimit::Measure) return report;

  // 3. search on the coordinator; the plan (and the table it refers to) goes to everybody.
  inject_failure(options, world, "search");
  stage.reset();
  SearchResult plan;
  std::string plan_hash;
  // With --validate-windows, the plans packed and compared (the search's first).
  std::vector<SearchResult> candidates;
  {
    std::string message;
    if (coordinator) {
      if (listed_search) {
        plan = search_listed(table, listed, options.search.substr(kPlanSearchPrefix.size()));
        plan.target_bpw = options.target_bpw;
      } else {
        plan = run_search(table, resolved_search(options), options.target_bpw);
      }
      plan_hash = hash_of({measure_hash, plan_to_json(plan).dump()});
      write_checkpoint_json(ctx.work.plan(), kPlanKind, plan_hash, plan_to_json(plan));
      AMLQ_LOG_INFO("search: {} -> {:.4f} bpw (target {:.4f}), max eps {:.3e}", plan.method, plan.achieved_bpw,
                    options.target_bpw, plan.max_eps);
      nlohmann::json alternatives = nlohmann::json::array();
      if (options.validate_windows > 0 && is_budgeted_search(options.search)) {
        candidates = plan_alternatives(table, plan, options.target_bpw, parse_validated_plans(options.validate_plans));
        for (const auto& c : candidates) alternatives.push_back(plan_to_json(c));
        if (candidates.size() > 1) {
          std::string names;
          for (const auto& c : candidates)
            names += fmt::format("{}{} ({:.4f} bpw, predicted +{:.4f})", names.empty() ? "" : ", ", c.method,
                                 c.achieved_bpw, c.predicted_delta_nll);
          AMLQ_LOG_INFO("search: {} plans to validate on {} held-out window(s): {}", candidates.size(),
                        options.validate_windows, names);
        }
      }
      message = nlohmann::json{{"plan", plan_to_json(plan)},
                               {"table", table_to_json(table)},
                               {"hash", plan_hash},
                               {"candidates", alternatives}}
                    .dump();
    }
    world.broadcast_string(message, 0);
    if (!coordinator) {
      const auto j = nlohmann::json::parse(message);
      plan = plan_from_json(j.at("plan"), "plan message");
      table = table_from_json(j.at("table"), "plan message");
      plan_hash = j.at("hash").get<std::string>();
      for (const auto& c : j.at("candidates")) candidates.push_back(plan_from_json(c, "plan message"));
    }
  }
  report.seconds.search = stage.seconds();
  if (limit == StageLimit::Search) {
    if (coordinator) fmt::print("{}", format_allocation(table, plan));
    return report;
  }

  // 4. pack: a second walk over the layers quantizes them with the plan, then the
  // output is assembled from the per-layer pack checkpoints.
  stage.reset();
  auto pack_hash_of = [&](const std::string& of_plan) {
    return hash_of({of_plan, "pack", sequential_mode_name(options.sequential), options.quantizer_name(),
                    lowrank_method_name(options.lowrank)});
  };
  // Which pack checkpoints hold which layers: pack/, or the chosen candidate's folder.
  std::vector<WorkDir> candidate_dirs;
  bool candidates_packed = false;
  if (candidates.size() > 1) {
    std::vector<std::string> hashes;
    for (size_t k = 0; k < candidates.size(); ++k) {
      hashes.push_back(pack_hash_of(hash_of({measure_hash, plan_to_json(candidates[k]).dump()})));
      candidate_dirs.push_back(ctx.work.for_candidate(static_cast<int>(k)));
    }
    const int chosen =
        validate_candidates(ctx, pass, table, candidates, candidate_dirs, hashes, reuse(StageLimit::Pack),
                            load_samples, candidates_packed, report);
    plan = candidates[static_cast<size_t>(chosen)];
    plan_hash = hash_of({measure_hash, plan_to_json(plan).dump()});
    ctx.work = candidate_dirs[static_cast<size_t>(chosen)];
    pass.work = ctx.work;
    if (coordinator) ctx.work.create();  // a reused validation packed nothing: the folder may be gone
    world.barrier();
  }
  const std::string pack_hash = pack_hash_of(plan_hash);
  auto pack_layer_hash = [&](int layer) { return hash_of({pack_hash, "layer", std::to_string(layer)}); };
  QuantizedModel model;
  model.header.tool_version = AMLQ_VERSION;
  model.header.source_model = options.model;
  model.header.config_json = ctx.config.source_json;
  model.header.search_method = plan.method;
  model.header.calibration = calibration;
  model.header.quantizer = options.quantizer_name();
  model.header.lowrank_method = lowrank_method_name(options.lowrank);
  model.header.target_bpw = options.target_bpw;
  model.header.achieved_bpw = plan.achieved_bpw;
  // calibration + gptq: what `amlq export --requantize` needs to regenerate the statistics.
  model.header.extra_json =
      nlohmann::json{{"input_hash", pack_hash},
                     {"recipes", space.name},
                     {"sequential", sequential_mode_name(options.sequential)},
                     {"calibration",
                      {{"data", options.calib},
                       {"data_hash", hash_data_file(options.calib)},
                       {"num_samples", cs.num_samples},
                       {"seqlen", cs.seqlen},
                       {"seed", cs.seed},
                       {"random_offsets", cs.random_offsets},
                       {"batch", options.batch},
                       {"samples_per_block", options.samples_per_block}}},
                     {"gptq", {{"damp", options.gptq.damp}, {"block_size", options.gptq.block_size}}}}
          .dump();
  bool pack_reused = false;
  if (coordinator && reuse(StageLimit::Pack) && fs::exists(options.out)) {
    try {
      QuantizedModel existing = read_quantized_model(options.out, false);
      const auto extra = nlohmann::json::parse(existing.header.extra_json.empty() ? "{}" : existing.header.extra_json);
      if (extra.value("input_hash", std::string()) == pack_hash) {
        model = std::move(existing);
        pack_reused = true;
      }
    } catch (const std::exception& e) {
      AMLQ_LOG_WARN("{}: cannot be reused ({}); packing again", options.out, e.what());
    }
  }
  pack_reused = agree(world, pack_reused);
  if (pack_reused) {
    report.resumed.push_back("pack");
    AMLQ_LOG_INFO("pack: {} already matches this plan", options.out);
  } else {
    std::vector<char> done(static_cast<size_t>(ctx.config.num_layers), candidates_packed ? 1 : 0);
    if (reuse(StageLimit::Pack) && !candidates_packed) {
      done = agree_done_layers(pass, [&](int layer) {
        const auto check = check_seal(ctx.work.pack_layer(layer), kPackLayerKind, pack_layer_hash(layer));
        report_check(check);
        return check.valid();
      });
      int reused_layers = 0;
      for (char d : done) reused_layers += d ? 1 : 0;
      if (reused_layers > 0) {
        report.resumed.push_back(fmt::format("pack ({} of {} layers)", reused_layers, ctx.config.num_layers));
        AMLQ_LOG_INFO("pack: {} of {} layers already packed", reused_layers, ctx.config.num_layers);
      }
    }
    load_samples();
    pack_pass(pass, table, {PackTarget{&plan, ctx.work, pack_layer_hash, done}});
    world.barrier();

    // Assemble the output from the pack checkpoints: every rank writes the
    // linears it packed (its stage's, dealt over replicas) one at a time.
    Timer write_timer;
    const auto all_tasks = linear_tasks(ctx.config, {0, ctx.config.num_layers});
    const LayerBlock mine = topo.my_layers();
    const int per_layer = static_cast<int>(decoder_linears(ctx.config).size());
    std::vector<int> my_indices;
    nlohmann::json meta = nlohmann::json::array();
    for (int layer = mine.first; layer < mine.end; ++layer) {
      QuantizedModel part;
      // Tensors are read too (one layer at a time) so that the metadata records which exist.
      if (topo.replica == 0) part = read_quantized_model(ctx.work.pack_layer(layer), true);
      for (int j = 0; j < per_layer; ++j) {
        const int g = layer * per_layer + j;
        if (topo.replica == 0) {
          const auto it = std::find_if(part.linears.begin(), part.linears.end(),
                                       [&](const PackedLinear& l) { return l.name == all_tasks[static_cast<size_t>(g)].name; });
          AMLQ_REQUIRE(it != part.linears.end(), "{}: has no linear {}", ctx.work.pack_layer(layer),
                       all_tasks[static_cast<size_t>(g)].name);
          meta.push_back({g, linear_metadata(*it)});
        }
        if (owner_replica((layer - mine.first) * per_layer + j, topo.replicas) == topo.replica) my_indices.push_back(g);
      }
    }
    const std::string blob = meta.dump();
    model.linears.assign(all_tasks.size(), PackedLinear());
    for (const auto& b : world.allgather_bytes(std::as_bytes(std::span(blob.data(), blob.size()))))
      for (const auto& entry : nlohmann::json::parse(std::string(reinterpret_cast<const char*>(b.data()), b.size())))
        model.linears.at(entry.at(0).get<size_t>()) = linear_from_metadata(entry.at(1));
    model.measurements = table;
    // Passthrough tensors: layouts from the index, data written by the owning stage of replica 0.
    auto owner_of = [&](const std::string& name) {
      int stage_index = 0;
      if (name.rfind("model.layers.", 0) == 0)
        stage_index = topo.stage_of_layer(std::stoi(name.substr(13)));
      else if (name == "model.norm.weight" || name == "lm_head.weight")
        stage_index = topo.stages - 1;
      return topo.rank_of(0, stage_index);
    };
    const auto mine_pass =
        passthrough_tensors(ctx.checkpoint, ctx.config, [&](const std::string& n) { return owner_of(n) == world.rank(); });
    h5::ModelLayout layout;
    layout.header = model.header;
    for (const auto& l : model.linears) layout.linears.push_back(layout_of_metadata(l));
    for (const auto& name : passthrough_names(ctx.checkpoint, ctx.config)) {
      const auto& info = ctx.checkpoint.info(name);
      layout.passthrough.push_back({name, info.dtype, info.shape});
    }
    layout.measurements = table;
    write_model_parallel(
        world, options.out, layout, static_cast<int>(my_indices.size()),
        [&](int i) {
          const int g = my_indices[static_cast<size_t>(i)];
          return read_quantized_linear(ctx.work.pack_layer(g / per_layer), all_tasks[static_cast<size_t>(g)].name);
        },
        mine_pass);
    pass.times.write += write_timer.seconds();
    // The output holds everything now: the per-layer pack checkpoints go.
    world.barrier();
    const std::vector<WorkDir> pack_dirs = candidate_dirs.empty() ? std::vector<WorkDir>{ctx.work} : candidate_dirs;
    if (topo.replica == 0)
      for (const WorkDir& dir : pack_dirs)
        for (int layer = mine.first; layer < mine.end; ++layer) remove_checkpoint(dir.pack_layer(layer));
    if (candidate_dirs.size() > 1) {
      world.barrier();
      std::error_code ec;  // the candidates' folders, now empty (pack/ itself stays)
      if (coordinator)
        for (size_t k = 1; k < candidate_dirs.size(); ++k)
          fs::remove(ctx.work.root + "/" + candidate_dirs[k].pack_folder, ec);
    }
    AMLQ_LOG_INFO("pack: wrote {} ({:.1f}s)", options.out, stage.seconds());
  }
  report.seconds.pack = stage.seconds();

  // Resources actually used: every rank's peak RSS next to the prediction.
  const ProcessMemory mem = read_process_memory();
  const int64_t work_bytes = coordinator ? ctx.work.bytes() : 0;
  const auto peaks = world.allgather_sizes(mem.peak_rss);
  const auto device_peaks = world.allgather_sizes(backend.peak_device_bytes());
  auto micros = [](double seconds) { return static_cast<int64_t>(std::llround(seconds * 1e6)); };
  const auto turn_waits = world.allgather_sizes(micros(pass.turns.waited_seconds()));
  const auto turn_starts = world.allgather_sizes(micros(pass.turns.turn_started()));
  const auto turn_ends = world.allgather_sizes(micros(pass.turns.turn_ended()));
  const auto turn_flags = world.allgather_sizes(pass.turns.enabled() ? 1 : 0);
  if (limit == StageLimit::Pack || !coordinator) return report;

  QuantizeReport full = build_report(ctx, calibration, table, plan, model);
  full.validation = report.validation;
  full.validation_windows = report.validation_windows;
  full.validation_seqlen = report.validation_seqlen;
  full.validation_data = report.validation_data;
  full.seconds = report.seconds;
  full.resumed = report.resumed;
  full.ranks = world.size();
  for (int r = 0; r < world.size(); ++r) {
    RankResources rr;
    rr.rank = r;
    rr.layers = fmt::format("[{}, {})", prediction[static_cast<size_t>(r)].layers.first,
                            prediction[static_cast<size_t>(r)].layers.end);
    rr.peak_rss = peaks[static_cast<size_t>(r)];
    rr.predicted_peak_rss = prediction[static_cast<size_t>(r)].peak_host;
    rr.predicted_phase = prediction[static_cast<size_t>(r)].peak_phase;
    rr.peak_device = device_peaks[static_cast<size_t>(r)];
    rr.turn_waited_seconds = static_cast<double>(turn_waits[static_cast<size_t>(r)]) * 1e-6;
    rr.turn_started = static_cast<double>(turn_starts[static_cast<size_t>(r)]) * 1e-6;
    rr.turn_ended = static_cast<double>(turn_ends[static_cast<size_t>(r)]) * 1e-6;
    full.memory_turns = full.memory_turns || turn_flags[static_cast<size_t>(r)] != 0;
    full.rank_resources.push_back(rr);
  }
  full.work_dir_bytes = work_bytes;
  if (!options.eval.empty()) full.eval = evaluate(backend, ctx, options.out, full.seconds.eval);
  full.seconds.total = total.seconds();
  return full;
}

void write_report_files(const QuantizeOptions& options, const QuantizeReport& report) {
  if (!options.report.empty()) write_json_file(options.report, report_json(report));
  AtomicOutput out(svg_path_of(options));
  {
    std::ofstream f(out.temp_path());
    f << allocation_svg(report);
    if (!f) AMLQ_FAIL(Output, "{}: write failed", out.temp_path());
  }
  out.commit();
}

}  // namespace amlq
