#include "pipeline/quantize_job.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/timer.h"
#include "io/hdf5/quantized_model.h"
#include "io/tokenizer/dataset.h"
#include "io/tokenizer/tokenizer.h"
#include "model/model_weights.h"
#include "model/perplexity.h"
#include "model/sequential.h"
#include "pipeline/input_hash.h"
#include "pipeline/json_checkpoint.h"
#include "pipeline/distributed.h"
#include "pipeline/stages.h"
#include "pipeline/topology.h"

namespace amlq {

namespace {

namespace fs = std::filesystem;

struct RunContext {
  const QuantizeOptions& options;
  ModelConfig config;
  Checkpoint checkpoint;
  std::string model_hash;
  std::string work;
};

std::string hash_of(std::initializer_list<std::string> parts) {
  Hasher h;
  for (const auto& p : parts) h.update(p);
  return h.hex();
}

std::vector<int32_t> load_ids(const std::string& model_dir, const std::string& data, int vocab_size) {
  // Id files need no tokenizer; text is tokenized with the model's own.
  std::unique_ptr<Tokenizer> tokenizer;
  if (!is_token_id_file(data)) tokenizer = load_tokenizer(model_dir);
  return load_token_ids(data, tokenizer.get(), vocab_size);
}

std::string calib_layer_path(const std::string& work, int layer) {
  return fmt::format("{}/calib/layer_{:05d}.h5", work, layer);
}

// Rank 0 decides, everybody follows: a stage's checkpoint is either reused by
// all ranks or by none.
bool agree(const Communicator& world, bool decision_on_rank0) {
  uint8_t flag = decision_on_rank0 ? 1 : 0;
  world.broadcast(std::as_writable_bytes(std::span(&flag, 1)), 0);
  return flag != 0;
}

void inject_failure(const QuantizeOptions& options, const Communicator& world, const char* stage) {
  if (options.debug_fail_rank == world.rank() && options.debug_fail_stage == stage)
    AMLQ_FAIL(Internal, "injected failure on rank {} in stage {} (--debug-fail-rank)", world.rank(), stage);
}

// This rank's layers' statistics: computed by the pipeline, or read back.
CalibrationStats calibrate(Backend& backend, RunContext& ctx, const Topology& topo, const Communicator& world,
                           const std::string& input_hash, bool reuse) {
  const auto& options = ctx.options;
  const LayerBlock mine = topo.my_layers();
  CalibrationStats stats;
  stats.input_hash = input_hash;
  stats.description = fmt::format("{}: {}", fs::path(options.calib).filename().string(), options.calib_spec.describe());
  if (reuse) {
    for (int layer = mine.first; layer < mine.end; ++layer) {
      auto part = read_calibration_stats(calib_layer_path(ctx.work, layer));
      stats.layers.push_back(std::move(part.layers.at(0)));
    }
    return stats;
  }
  const auto share = replica_samples(options.calib_spec.num_samples, topo.replicas, topo.replica, options.batch,
                                     options.samples_per_block);
  std::vector<std::vector<int32_t>> samples;
  if (topo.first_stage()) {
    const auto ids = load_ids(options.model, options.calib, ctx.config.vocab_size);
    auto all = sample_calibration(ids, options.calib_spec);
    samples.assign(all.begin() + share.first, all.begin() + share.end);
    AMLQ_LOG_INFO("calibration: {} from {} ({} ids){}", options.calib_spec.describe(), options.calib, ids.size(),
                  topo.replicas > 1 ? fmt::format(", samples [{}, {}) on replica {}", share.first, share.end,
                                                  topo.replica)
                                    : "");
  } else {
    samples.resize(static_cast<size_t>(share.size()));  // only the count matters downstream
  }
  ModelWeights weights =
      load_model_weights(ctx.checkpoint, ctx.config, mine.first, mine.end, topo.first_stage(), false);
  const Communicator stage_replicas = world.split(topo.stage, topo.replica);
  stats.layers = calibrate_stage(backend, options, topo, world, stage_replicas, weights, samples, share.first);
  if (topo.replica == 0) {
    for (const auto& layer : stats.layers) {
      CalibrationStats one;
      one.input_hash = input_hash;
      one.description = stats.description;
      one.layers.push_back(layer);
      write_calibration_stats(calib_layer_path(ctx.work, layer.layer), one);
    }
  }
  return stats;
}

EvalSummary evaluate(Backend& backend, RunContext& ctx, const std::string& quantized_path, double& seconds) {
  const auto& options = ctx.options;
  Timer timer;
  EvalSummary summary;
  summary.data = options.eval;
  summary.seqlen = options.eval_seqlen;
  const auto ids = load_ids(options.model, options.eval, ctx.config.vocab_size);
  const int batch = std::max(1, options.batch);

  // The FP perplexity depends only on the model and the evaluation request: cache it.
  const std::string fp_path = ctx.work + "/fp_eval.json";
  const std::string fp_hash = hash_of({ctx.model_hash, hash_data_file(options.eval), std::to_string(options.eval_seqlen),
                                       std::to_string(options.eval_max_windows)});
  if (read_json_hash(fp_path) == fp_hash) {
    const auto j = read_json_file(fp_path);
    summary.fp_ppl = j.at("ppl").get<double>();
    summary.fp_nll = j.at("mean_nll").get<double>();
    AMLQ_LOG_INFO("eval: FP perplexity {:.4f} (cached in {})", summary.fp_ppl, fp_path);
  } else {
    AMLQ_LOG_INFO("eval: FP model on {} (seqlen {})", options.eval, options.eval_seqlen);
    const ModelWeights fp = load_model_weights(ctx.checkpoint, ctx.config, 0, ctx.config.num_layers, true, true);
    const auto r = evaluate_perplexity(backend, fp, ids, options.eval_seqlen, options.eval_max_windows, batch);
    summary.fp_ppl = r.ppl;
    summary.fp_nll = r.mean_nll;
    write_json_file(fp_path, {{"input_hash", fp_hash}, {"ppl", r.ppl}, {"mean_nll", r.mean_nll}, {"windows", r.windows}});
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
  report.target_bpw = options.target_bpw;
  report.achieved_bpw = packed.header.achieved_bpw;
  for (const auto& row : table) report.candidates += static_cast<int>(row.candidates.size());
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
    report.quantized_params += r.numel;
    report.layers.push_back(r);
  }
  return report;
}

}  // namespace

QuantizeReport run_quantize(Backend& backend, const QuantizeOptions& options, StageLimit limit,
                            const Communicator& world) {
  Timer total;
  AMLQ_REQUIRE(!options.out.empty() || limit != StageLimit::All, "--out is required");
  RunContext ctx{options, load_model_config(options.model), Checkpoint::open(options.model), "", options.resolved_work_dir()};
  ctx.model_hash = hash_model(ctx.config, ctx.checkpoint);
  const Topology topo =
      make_topology(ctx.config, world.rank(), world.size(), options.replicas, options.layers_per_rank);
  const bool coordinator = world.rank() == 0;
  if (coordinator) {
    std::error_code ec;
    fs::create_directories(ctx.work + "/calib", ec);
    if (ec) AMLQ_FAIL(Output, "{}: cannot create the work directory: {}", ctx.work, ec.message());
    if (world.size() > 1) {
      std::string blocks;
      for (const auto& b : topo.stage_layers) blocks += fmt::format(" [{}, {})", b.first, b.end);
      AMLQ_LOG_INFO("{} ranks: {} replica(s) x {} pipeline stage(s), layers per stage:{}", world.size(), topo.replicas,
                    topo.stages, blocks);
    }
  }
  world.barrier();
  QuantizeReport report;
  report.ranks = world.size();
  // A stage subcommand reuses the earlier stages' checkpoints when they match.
  auto reuse = [&](StageLimit stage) {
    return options.resume || (limit != StageLimit::All && static_cast<int>(stage) < static_cast<int>(limit));
  };

  // 1. calibrate
  inject_failure(options, world, "calibrate");
  const auto& cs = options.calib_spec;
  const std::string calib_hash = hash_of(
      {ctx.model_hash, hash_data_file(options.calib), std::to_string(cs.num_samples), std::to_string(cs.seqlen),
       std::to_string(cs.seed), std::to_string(cs.random_offsets), std::to_string(options.samples_per_block),
       std::to_string(options.batch),
       options.sequential ? "sequential:" + options.sequential_spec + options.quantizer_name() +
                                fmt::format("{}", options.gptq.damp)
                          : "parallel"});
  Timer stage;
  bool calib_reused = false;
  if (coordinator && reuse(StageLimit::Calibrate)) {
    calib_reused = true;
    for (int layer = 0; layer < ctx.config.num_layers && calib_reused; ++layer)
      calib_reused = read_checkpoint_hash(calib_layer_path(ctx.work, layer)) == calib_hash;
  }
  calib_reused = agree(world, calib_reused);
  const CalibrationStats stats = calibrate(backend, ctx, topo, world, calib_hash, calib_reused);
  world.barrier();
  if (calib_reused) report.resumed.push_back("calibrate");
  AMLQ_LOG_INFO("calibrate: {} {}/calib ({:.1f}s)", calib_reused ? "reused" : "wrote", ctx.work, stage.seconds());
  report.seconds.calibrate = stage.seconds();
  if (limit == StageLimit::Calibrate) return report;

  // 2. measure: this rank's share of its stage's linears; rows gathered on rank 0.
  inject_failure(options, world, "measure");
  stage.reset();
  const RecipeSpace space = load_recipe_space(options.recipes);
  std::string space_text;
  for (const auto& s : space.specs) space_text += s.label() + ",";
  for (int r : space.ranks) space_text += "r" + std::to_string(r) + ",";
  const std::string measure_hash =
      hash_of({calib_hash, space_text, options.quantizer_name(), lowrank_method_name(options.lowrank),
               factor_format_name(options.factor_format), fmt::format("{} {}", options.gptq.damp, options.gptq.block_size)});
  const std::string measure_path = ctx.work + "/measure.json";
  const auto all_tasks = linear_tasks(ctx.config, {0, ctx.config.num_layers});
  // My tasks: my stage's linears dealt round-robin over the replicas; global index kept.
  std::vector<LinearTask> my_tasks;
  std::vector<int> my_indices;
  {
    const LayerBlock mine = topo.my_layers();
    int in_stage = 0;
    for (size_t g = 0; g < all_tasks.size(); ++g) {
      if (all_tasks[g].layer < mine.first || all_tasks[g].layer >= mine.end) continue;
      if (owner_replica(in_stage++, topo.replicas) == topo.replica) {
        my_tasks.push_back(all_tasks[g]);
        my_indices.push_back(static_cast<int>(g));
      }
    }
  }
  MeasurementTable table;
  const bool measure_reused = agree(world, coordinator && reuse(StageLimit::Measure) &&
                                               read_json_hash(measure_path) == measure_hash);
  if (measure_reused) {
    if (coordinator) table = table_from_json(read_json_file(measure_path).at("table"), measure_path);
    report.resumed.push_back("measure");
    AMLQ_LOG_INFO("measure: reusing {}", measure_path);
  } else {
    AMLQ_LOG_INFO("measure: recipe space '{}' ({} specs x {} ranks)", space.name, space.specs.size(), space.ranks.size());
    const MeasurementTable mine =
        measure_linears(backend, options, ctx.config, ctx.checkpoint, stats, space, my_tasks);
    const std::string blob = nlohmann::json{{"index", my_indices}, {"rows", table_to_json(mine)}}.dump();
    const auto blobs = world.gather_bytes(std::as_bytes(std::span(blob.data(), blob.size())), 0);
    if (coordinator) {
      table.resize(all_tasks.size());
      for (const auto& b : blobs) {
        const auto j = nlohmann::json::parse(std::string(reinterpret_cast<const char*>(b.data()), b.size()));
        const auto indices = j.at("index").get<std::vector<int>>();
        const auto rows = table_from_json(j.at("rows"), "measurement message");
        for (size_t i = 0; i < indices.size(); ++i) table[static_cast<size_t>(indices[i])] = rows[i];
      }
      write_json_file(measure_path, {{"input_hash", measure_hash}, {"table", table_to_json(table)}});
      AMLQ_LOG_INFO("measure: {} linears from {} rank(s) -> {} ({:.1f}s)", table.size(), world.size(), measure_path,
                    stage.seconds());
    }
  }
  report.seconds.measure = stage.seconds();
  if (limit == StageLimit::Measure) return report;

  // 3. search on the coordinator; the plan (and the table it refers to) goes to everybody.
  inject_failure(options, world, "search");
  stage.reset();
  SearchResult plan;
  std::string plan_hash;
  {
    std::string message;
    if (coordinator) {
      plan = run_search(table, options.search, options.target_bpw);
      plan_hash = hash_of({measure_hash, plan_to_json(plan).dump()});
      write_json_file(ctx.work + "/plan.json", {{"input_hash", plan_hash}, {"plan", plan_to_json(plan)}});
      AMLQ_LOG_INFO("search: {} -> {:.4f} bpw (target {:.4f}), max eps {:.3e}", plan.method, plan.achieved_bpw,
                    options.target_bpw, plan.max_eps);
      message = nlohmann::json{{"plan", plan_to_json(plan)}, {"table", table_to_json(table)}, {"hash", plan_hash}}.dump();
    }
    world.broadcast_string(message, 0);
    if (!coordinator) {
      const auto j = nlohmann::json::parse(message);
      plan = plan_from_json(j.at("plan"), "plan message");
      table = table_from_json(j.at("table"), "plan message");
      plan_hash = j.at("hash").get<std::string>();
    }
  }
  report.seconds.search = stage.seconds();
  if (limit == StageLimit::Search) {
    if (coordinator) fmt::print("{}", format_allocation(table, plan));
    return report;
  }

  // 4. pack: every rank quantizes its share and writes it into the one file.
  inject_failure(options, world, "pack");
  stage.reset();
  QuantizedModel model;
  model.header.tool_version = AMLQ_VERSION;
  model.header.source_model = options.model;
  model.header.config_json = ctx.config.source_json;
  model.header.search_method = plan.method;
  model.header.calibration = stats.description;
  model.header.quantizer = options.quantizer_name();
  model.header.lowrank_method = lowrank_method_name(options.lowrank);
  model.header.target_bpw = options.target_bpw;
  model.header.achieved_bpw = plan.achieved_bpw;
  // calibration + gptq: what `amlq export --requantize` needs to regenerate the statistics.
  model.header.extra_json =
      nlohmann::json{{"input_hash", plan_hash},
                     {"recipes", space.name},
                     {"calibration",
                      {{"data", options.calib}, {"data_hash", hash_data_file(options.calib)},
                       {"num_samples", cs.num_samples}, {"seqlen", cs.seqlen}, {"seed", cs.seed},
                       {"random_offsets", cs.random_offsets}, {"batch", options.batch},
                       {"samples_per_block", options.samples_per_block}}},
                     {"gptq", {{"damp", options.gptq.damp}, {"block_size", options.gptq.block_size}}}}
          .dump();
  bool pack_reused = false;
  if (coordinator && reuse(StageLimit::Pack) && fs::exists(options.out)) {
    try {
      QuantizedModel existing = read_quantized_model(options.out, false);
      const auto extra = nlohmann::json::parse(existing.header.extra_json.empty() ? "{}" : existing.header.extra_json);
      if (extra.value("input_hash", std::string()) == plan_hash) {
        model = std::move(existing);
        pack_reused = true;
      }
    } catch (const std::exception&) {
    }
  }
  pack_reused = agree(world, pack_reused);
  if (pack_reused) {
    report.resumed.push_back("pack");
    AMLQ_LOG_INFO("pack: {} already matches this plan", options.out);
  } else {
    std::vector<Candidate> my_choices;
    for (int g : my_indices)
      my_choices.push_back(table[static_cast<size_t>(g)].candidates[static_cast<size_t>(plan.choice[static_cast<size_t>(g)])]);
    std::vector<PackedLinear> mine =
        pack_linears(backend, options, ctx.config, ctx.checkpoint, stats, my_tasks, my_choices);
    if (world.size() == 1) {
      model.linears = std::move(mine);
      model.passthrough = passthrough_tensors(ctx.checkpoint, ctx.config, [](const std::string&) { return true; });
      model.measurements = table;
      write_quantized_model(options.out, model);
    } else {
      // Everybody needs every linear's layout for the collective creation.
      nlohmann::json meta = nlohmann::json::array();
      for (size_t i = 0; i < mine.size(); ++i) meta.push_back({my_indices[i], linear_metadata(mine[i])});
      const std::string blob = meta.dump();
      model.linears.resize(all_tasks.size());
      for (const auto& b : world.allgather_bytes(std::as_bytes(std::span(blob.data(), blob.size()))))
        for (const auto& entry : nlohmann::json::parse(std::string(reinterpret_cast<const char*>(b.data()), b.size())))
          model.linears[entry.at(0).get<size_t>()] = linear_from_metadata(entry.at(1));
      // Passthrough tensors: layouts from the index, data written by the owning stage of replica 0.
      auto owner_of = [&](const std::string& name) {
        int stage_index = 0;
        if (name.rfind("model.layers.", 0) == 0)
          stage_index = topo.stage_of_layer(std::stoi(name.substr(13)));
        else if (name == "model.norm.weight" || name == "lm_head.weight")
          stage_index = topo.stages - 1;
        return topo.rank_of(0, stage_index);
      };
      const auto mine_pass = passthrough_tensors(ctx.checkpoint, ctx.config,
                                                 [&](const std::string& n) { return owner_of(n) == world.rank(); });
      h5::ModelLayout layout;
      layout.header = model.header;
      for (const auto& l : model.linears) layout.linears.push_back(layout_of_metadata(l));
      for (const auto& name : passthrough_names(ctx.checkpoint, ctx.config)) {
        const auto& info = ctx.checkpoint.info(name);
        layout.passthrough.push_back({name, info.dtype, info.shape});
      }
      layout.measurements = table;
      write_model_parallel(world, options.out, layout, mine, mine_pass);
    }
    AMLQ_LOG_INFO("pack: wrote {} ({:.1f}s)", options.out, stage.seconds());
  }
  report.seconds.pack = stage.seconds();
  if (limit == StageLimit::Pack || !coordinator) return report;

  QuantizeReport full = build_report(ctx, stats.description, table, plan, model);
  full.seconds = report.seconds;
  full.resumed = report.resumed;
  full.ranks = world.size();
  if (!options.eval.empty()) full.eval = evaluate(backend, ctx, options.out, full.seconds.eval);
  full.seconds.total = total.seconds();
  return full;
}

void write_report_files(const QuantizeOptions& options, const QuantizeReport& report) {
  if (!options.report.empty()) write_json_file(options.report, report_json(report));
  std::string svg_path = options.svg;
  if (svg_path.empty()) {
    const std::string base = options.report.empty() ? options.out : options.report;
    svg_path = fs::path(base).replace_extension(".svg").string();
  }
  AtomicOutput out(svg_path);
  {
    std::ofstream f(out.temp_path());
    f << allocation_svg(report);
    if (!f) AMLQ_FAIL(Output, "{}: write failed", out.temp_path());
  }
  out.commit();
}

}  // namespace amlq
