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
#include "pipeline/stages.h"

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
  const auto ext = fs::path(data).extension().string();
  std::unique_ptr<Tokenizer> tokenizer;
  if (ext != ".u16" && ext != ".u32" && ext != ".npy") tokenizer = load_tokenizer(model_dir);
  return load_token_ids(data, tokenizer.get(), vocab_size);
}

CalibrationStats calibrate(Backend& backend, RunContext& ctx, const std::string& input_hash) {
  const auto& options = ctx.options;
  const auto ids = load_ids(options.model, options.calib, ctx.config.vocab_size);
  const auto samples = sample_calibration(ids, options.calib_spec);
  AMLQ_LOG_INFO("calibration: {} from {} ({} ids)", options.calib_spec.describe(), options.calib, ids.size());
  ModelWeights weights = load_model_weights(ctx.checkpoint, ctx.config, 0, ctx.config.num_layers, true, false);
  MatrixF hidden = embed_samples(weights, samples);
  CalibrationStats stats;
  stats.input_hash = input_hash;
  stats.description = fmt::format("{}: {}", fs::path(options.calib).filename().string(), options.calib_spec.describe());
  stats.layers = calibrate_layers(backend, options, weights, hidden, static_cast<int>(samples.size()), 0);
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

QuantizeReport build_report(const RunContext& ctx, const CalibrationStats& stats, const MeasurementTable& table,
                            const SearchResult& plan, const QuantizedModel& packed) {
  const auto& options = ctx.options;
  QuantizeReport report;
  report.model = options.model;
  report.out = options.out;
  report.calibration = stats.description;
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

QuantizeReport run_quantize(Backend& backend, const QuantizeOptions& options, StageLimit limit) {
  Timer total;
  AMLQ_REQUIRE(!options.out.empty() || limit != StageLimit::All, "--out is required");
  RunContext ctx{options, load_model_config(options.model), Checkpoint::open(options.model), "", options.resolved_work_dir()};
  ctx.model_hash = hash_model(ctx.config, ctx.checkpoint);
  std::error_code ec;
  fs::create_directories(ctx.work, ec);
  if (ec) AMLQ_FAIL(Output, "{}: cannot create the work directory: {}", ctx.work, ec.message());
  QuantizeReport report;
  // A stage subcommand reuses the earlier stages' checkpoints when they match.
  auto reuse = [&](StageLimit stage) {
    return options.resume || (limit != StageLimit::All && static_cast<int>(stage) < static_cast<int>(limit));
  };

  // 1. calibrate
  const auto& cs = options.calib_spec;
  const std::string calib_hash = hash_of(
      {ctx.model_hash, hash_data_file(options.calib), std::to_string(cs.num_samples), std::to_string(cs.seqlen),
       std::to_string(cs.seed), std::to_string(cs.random_offsets), std::to_string(options.samples_per_block),
       options.sequential ? "sequential:" + options.sequential_spec + options.quantizer_name() +
                                fmt::format("{}", options.gptq.damp)
                          : "parallel"});
  const std::string calib_path = ctx.work + "/calib.h5";
  CalibrationStats stats;
  Timer stage;
  if (reuse(StageLimit::Calibrate) && read_checkpoint_hash(calib_path) == calib_hash) {
    stats = read_calibration_stats(calib_path);
    report.resumed.push_back("calibrate");
    AMLQ_LOG_INFO("calibrate: reusing {}", calib_path);
  } else {
    stats = calibrate(backend, ctx, calib_hash);
    write_calibration_stats(calib_path, stats);
    AMLQ_LOG_INFO("calibrate: wrote {} ({:.1f}s)", calib_path, stage.seconds());
  }
  report.seconds.calibrate = stage.seconds();
  if (limit == StageLimit::Calibrate) return report;

  // 2. measure
  stage.reset();
  const RecipeSpace space = load_recipe_space(options.recipes);
  std::string space_text;
  for (const auto& s : space.specs) space_text += s.label() + ",";
  for (int r : space.ranks) space_text += "r" + std::to_string(r) + ",";
  const std::string measure_hash =
      hash_of({calib_hash, space_text, options.quantizer_name(), lowrank_method_name(options.lowrank),
               factor_format_name(options.factor_format), fmt::format("{} {}", options.gptq.damp, options.gptq.block_size)});
  const std::string measure_path = ctx.work + "/measure.json";
  MeasurementTable table;
  if (reuse(StageLimit::Measure) && read_json_hash(measure_path) == measure_hash) {
    table = table_from_json(read_json_file(measure_path).at("table"), measure_path);
    report.resumed.push_back("measure");
    AMLQ_LOG_INFO("measure: reusing {}", measure_path);
  } else {
    AMLQ_LOG_INFO("measure: recipe space '{}' ({} specs x {} ranks)", space.name, space.specs.size(), space.ranks.size());
    table = measure_linears(backend, options, ctx.config, ctx.checkpoint, stats, space,
                            linear_tasks(ctx.config, {0, ctx.config.num_layers}));
    write_json_file(measure_path, {{"input_hash", measure_hash}, {"table", table_to_json(table)}});
  }
  report.seconds.measure = stage.seconds();
  if (limit == StageLimit::Measure) return report;

  // 3. search
  stage.reset();
  const SearchResult plan = run_search(table, options.search, options.target_bpw);
  const std::string plan_hash = hash_of({measure_hash, plan_to_json(plan).dump()});
  write_json_file(ctx.work + "/plan.json", {{"input_hash", plan_hash}, {"plan", plan_to_json(plan)}});
  report.seconds.search = stage.seconds();
  AMLQ_LOG_INFO("search: {} -> {:.4f} bpw (target {:.4f}), max eps {:.3e}", plan.method, plan.achieved_bpw,
                options.target_bpw, plan.max_eps);
  if (limit == StageLimit::Search) {
    fmt::print("{}", format_allocation(table, plan));
    return report;
  }

  // 4. pack
  stage.reset();
  QuantizedModel model;
  bool reused = false;
  if (reuse(StageLimit::Pack) && fs::exists(options.out)) {
    try {
      QuantizedModel existing = read_quantized_model(options.out, false);
      const auto extra = nlohmann::json::parse(existing.header.extra_json.empty() ? "{}" : existing.header.extra_json);
      if (extra.value("input_hash", std::string()) == plan_hash) {
        model = std::move(existing);
        reused = true;
      }
    } catch (const std::exception&) {
    }
  }
  if (reused) {
    report.resumed.push_back("pack");
    AMLQ_LOG_INFO("pack: {} already matches this plan", options.out);
  } else {
    model.header.tool_version = AMLQ_VERSION;
    model.header.source_model = options.model;
    model.header.config_json = ctx.config.source_json;
    model.header.search_method = plan.method;
    model.header.calibration = stats.description;
    model.header.quantizer = options.quantizer_name();
    model.header.lowrank_method = lowrank_method_name(options.lowrank);
    model.header.target_bpw = options.target_bpw;
    model.header.achieved_bpw = plan.achieved_bpw;
    model.header.extra_json = nlohmann::json{{"input_hash", plan_hash}, {"recipes", space.name}}.dump();
    std::vector<Candidate> choices;
    for (size_t i = 0; i < table.size(); ++i)
      choices.push_back(table[i].candidates[static_cast<size_t>(plan.choice[i])]);
    model.linears = pack_linears(backend, options, ctx.config, ctx.checkpoint, stats,
                                 linear_tasks(ctx.config, {0, ctx.config.num_layers}), choices);
    model.passthrough = passthrough_tensors(ctx.checkpoint, ctx.config);
    model.measurements = table;
    write_quantized_model(options.out, model);
    AMLQ_LOG_INFO("pack: wrote {} ({:.1f}s)", options.out, stage.seconds());
  }
  report.seconds.pack = stage.seconds();
  if (limit == StageLimit::Pack) return report;

  QuantizeReport full = build_report(ctx, stats, table, plan, model);
  full.seconds = report.seconds;
  full.resumed = report.resumed;
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
