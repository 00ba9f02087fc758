#include "pipeline/layer_passes.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <thread>
#include <cstring>

#include "core/error.h"
#include "core/log.h"
#include "core/parallel.h"
#include "core/timer.h"
#include "io/hdf5/quantized_model.h"
#include "model/forward.h"
#include "model/layer_statistics.h"
#include "model/model_weights.h"
#include "model/rope.h"
#include "pipeline/calibration_stats.h"
#include "pipeline/distributed.h"
#include "pipeline/json_checkpoint.h"
#include "pipeline/measure_site.h"
#include "pipeline/stages.h"
#include "quant/error.h"
#include "quant/pack.h"

namespace amlq {
namespace {

// Micro-batch tags between consecutive stages, one range per pass, so that a
// message of one pass can never be taken for one of the other.
constexpr int kMeasurePassTag = 100;
constexpr int kPackPassTag = 8200;
constexpr int kMaxMicroBatches = 8000;
// Memory-turn tokens (pipeline/memory_turns.h), one per pass.
constexpr int kMeasureTurnTag = 16300;
constexpr int kPackTurnTag = 16301;

constexpr InputSite kSites[] = {InputSite::AttnIn, InputSite::AttnOut, InputSite::MlpIn, InputSite::MlpOut};

int micro_batches(const PassContext& ctx) { return (ctx.share.size() + ctx.options.batch - 1) / ctx.options.batch; }

// Samples [first, first + count) of this rank's share form micro-batch mb.
struct MicroBatch {
  int first = 0;  // index within the share
  int count = 0;
};

MicroBatch micro_batch(const PassContext& ctx, int mb) {
  const int first = mb * ctx.options.batch;
  return {first, std::min(ctx.options.batch, ctx.share.size() - first)};
}

Eigen::Index sample_rows(const PassContext& ctx, int samples) {
  return static_cast<Eigen::Index>(samples) * ctx.options.calib_spec.seqlen;
}

// The embedding of this rank's samples (first stage only).
MatrixF embed_share(const PassContext& ctx) {
  std::vector<int32_t> ids;
  ids.reserve(static_cast<size_t>(sample_rows(ctx, ctx.share.size())));
  for (const auto& s : ctx.samples) ids.insert(ids.end(), s.begin(), s.end());
  return embed_from_checkpoint(ctx.checkpoint, ctx.config, ids);
}

// Tokens/s and GEMM-equivalent GFLOP/s of one layer's forward + statistics, so a
// user can compare a run with the machine's GEMM rate (`amlq plan --measure-rates`).
// Counted: 2 flops per weight per token, causal attention (QK^T and PV over half
// the window on average), and tokens * n^2 per site Hessian (lower-triangle tiles).
void log_forward_rate(const PassContext& ctx, int layer, Eigen::Index tokens, double seconds) {
  const ModelConfig& c = ctx.config;
  const double h = c.hidden_size, inter = c.intermediate_size, q = double(c.num_heads) * c.head_dim,
               kv = double(c.num_kv_heads) * c.head_dim, t = double(tokens), seqlen = ctx.options.calib_spec.seqlen;
  const double linear = 2.0 * t * (h * (q + 2 * kv) + q * h + 3 * h * inter);
  const double attention = 2.0 * t * seqlen * q;
  const double hessians = t * (h * h + q * q + h * h + inter * inter);
  const double gflops = (linear + attention + hessians) / std::max(seconds, 1e-9) / 1e9;
  AMLQ_LOG_INFO("  layer {}: forward + statistics of {} tokens in {:.1f}s ({:.0f} tokens/s, {:.1f} GFLOP/s)", layer,
                tokens, seconds, t / std::max(seconds, 1e-9), gflops);
}

// One decoder layer over every sample in `hidden`, in place, micro-batch by
// micro-batch (the same GEMM shapes in every rank layout); statistics of its
// inputs go to *stats. before(mb) runs before micro-batch mb (e.g. to receive
// it), after(mb) once its outputs are in `hidden` (e.g. to send them on).
// With write_back false only the statistics are wanted and `hidden` is kept.
double forward_layer_in_place(PassContext& ctx, const DecoderLayerWeights& layer, const RopeTables& rope,
                            MatrixF& hidden, LayerStatistics* stats, const std::function<void(int)>& before = {},
                            const std::function<void(int)>& after = {}, bool write_back = true) {
  Timer timer;
  const int seqlen = ctx.options.calib_spec.seqlen;
  MatrixF part;
  LayerInputs captured;
  for (int mb = 0; mb < micro_batches(ctx); ++mb) {
    if (before) before(mb);
    const MicroBatch b = micro_batch(ctx, mb);
    const Eigen::Index r0 = sample_rows(ctx, b.first), rows = sample_rows(ctx, b.count);
    part = hidden.middleRows(r0, rows);
    decoder_layer_forward(ctx.backend, ctx.config, layer, rope, part, b.count, seqlen, stats ? &captured : nullptr);
    if (stats) accumulate_layer_statistics(ctx.backend, captured, ctx.share.first + b.first, b.count, *stats);
    if (write_back) hidden.middleRows(r0, rows) = part;
    if (after) after(mb);
  }
  const double seconds = timer.seconds();
  ctx.times.forward += seconds;
  return seconds;
}

// Statistics of one site only, recomputing the layer up to that site's input
// (true-sequential packing); `hidden` is unchanged.
void site_statistics(PassContext& ctx, const DecoderLayerWeights& layer, const RopeTables& rope, const MatrixF& hidden,
                     InputSite site, HessianAccumulator& acc) {
  Timer timer;
  const int seqlen = ctx.options.calib_spec.seqlen;
  MatrixF part, input;
  for (int mb = 0; mb < micro_batches(ctx); ++mb) {
    const MicroBatch b = micro_batch(ctx, mb);
    part = hidden.middleRows(sample_rows(ctx, b.first), sample_rows(ctx, b.count));
    decoder_layer_site_input(ctx.backend, ctx.config, layer, rope, part, b.count, seqlen, site, input);
    acc.add(ctx.backend, input, ctx.share.first + b.first, b.count);
  }
  ctx.times.forward += timer.seconds();
}

void send_rows(const PassContext& ctx, const MatrixF& hidden, int mb, int dest, int tag_base) {
  const MicroBatch b = micro_batch(ctx, mb);
  const MatrixF rows = hidden.middleRows(sample_rows(ctx, b.first), sample_rows(ctx, b.count));
  send_matrix(ctx.world, rows, dest, tag_base + mb);
}

void recv_rows(const PassContext& ctx, MatrixF& hidden, int mb, int source, int tag_base) {
  const MicroBatch b = micro_batch(ctx, mb);
  const MatrixF rows = recv_matrix(ctx.world, source, tag_base + mb);
  AMLQ_ASSERT(rows.rows() == sample_rows(ctx, b.count) && rows.cols() == hidden.cols(),
              "micro-batch {} from rank {} is {}x{}, expected {}x{}", mb, source, rows.rows(), rows.cols(),
              sample_rows(ctx, b.count), hidden.cols());
  hidden.middleRows(sample_rows(ctx, b.first), rows.rows()) = rows;
}

// Fault injection for tests (--debug-fail-rank/--debug-fail-stage): the rank
// fails right after it finished its first layer of that pass, so that a resume
// has real per-layer checkpoints to reuse.
void fail_if_asked(const PassContext& ctx, const char* stage) {
  if (ctx.options.debug_fail_rank == ctx.world.rank() && ctx.options.debug_fail_stage == stage)
    AMLQ_FAIL(Internal, "injected failure on rank {} in stage {} (--debug-fail-rank)", ctx.world.rank(), stage);
}

// Slowing for tests (--debug-slow-stage/--debug-slow-ms): the kill -9 harness
// widens a pass that lasts tenths of a second on stories260K so that a seeded
// kill lands inside it. Changes nothing but time.
void slow_if_asked(const PassContext& ctx, const char* stage) {
  if (ctx.options.debug_slow_ms > 0 && ctx.options.debug_slow_stage == stage)
    std::this_thread::sleep_for(std::chrono::milliseconds(ctx.options.debug_slow_ms));
}

int prev_rank(const PassContext& ctx) { return ctx.topo.rank_of(ctx.topo.replica, ctx.topo.stage - 1); }
int next_rank(const PassContext& ctx) { return ctx.topo.rank_of(ctx.topo.replica, ctx.topo.stage + 1); }

// This stage's FP calibration inputs. When `feed_next`, the stage also runs its
// layers forward (FP, layer by layer over the micro-batches) and sends its
// outputs to the next stage as they come: the first layer of stage s+1 starts on
// micro-batch 0 while stage s is still on its last layer.
MatrixF fp_stage_inputs(PassContext& ctx, bool feed_next, bool keep_inputs) {
  const LayerBlock mine = ctx.topo.my_layers();
  const int hidden_size = ctx.config.hidden_size;
  const Eigen::Index rows = sample_rows(ctx, ctx.share.size());
  AMLQ_REQUIRE(micro_batches(ctx) < kMaxMicroBatches, "{} micro-batches: raise --batch", micro_batches(ctx));
  if (!feed_next) {
    if (!keep_inputs) return MatrixF();
    if (ctx.topo.first_stage()) return embed_share(ctx);
    MatrixF hidden(rows, hidden_size);
    for (int mb = 0; mb < micro_batches(ctx); ++mb) recv_rows(ctx, hidden, mb, prev_rank(ctx), kMeasurePassTag);
    return hidden;
  }
  MatrixF hidden = ctx.topo.first_stage() ? embed_share(ctx) : MatrixF(rows, hidden_size);
  MatrixF kept;
  if (keep_inputs && !ctx.topo.first_stage()) kept.resize(rows, hidden_size);
  const RopeTables rope = make_rope_tables(ctx.config, ctx.options.calib_spec.seqlen);
  for (int layer = mine.first; layer < mine.end; ++layer) {
    const DecoderLayerWeights weights = load_decoder_layer(ctx.checkpoint, ctx.config, layer);
    std::function<void(int)> before, after;
    if (layer == mine.first && !ctx.topo.first_stage())
      before = [&](int mb) {
        recv_rows(ctx, hidden, mb, prev_rank(ctx), kMeasurePassTag);
        if (keep_inputs) {
          const MicroBatch b = micro_batch(ctx, mb);
          kept.middleRows(sample_rows(ctx, b.first), sample_rows(ctx, b.count)) =
              hidden.middleRows(sample_rows(ctx, b.first), sample_rows(ctx, b.count));
        }
      };
    if (layer == mine.end - 1) after = [&](int mb) { send_rows(ctx, hidden, mb, next_rank(ctx), kMeasurePassTag); };
    forward_layer_in_place(ctx, weights, rope, hidden, nullptr, before, after);
    AMLQ_LOG_INFO("[{}/{}] layer {}: FP forward for the next stage ({:.1f}s forward so far)", layer - mine.first + 1,
                  mine.size(), layer, ctx.times.forward);
  }
  if (!keep_inputs) return MatrixF();
  // The first stage recomputes its embedding rather than keeping a copy.
  return ctx.topo.first_stage() ? embed_share(ctx) : kept;
}

// Global index of linear j of `layer` within the stage, for dealing work over replicas.
bool mine_to_do(const PassContext& ctx, int layer, int j) {
  const int per_layer = static_cast<int>(decoder_linears(ctx.config).size());
  return owner_replica((layer - ctx.topo.my_layers().first) * per_layer + j, ctx.topo.replicas) == ctx.topo.replica;
}

SiteStatistics take_site(LayerStatistics& stats, InputSite site) {
  auto r = stats.site(site).take_result();
  SiteStatistics out;
  out.hessian = std::move(r.hessian);
  out.act_scale = std::move(r.act_scale);
  out.tokens = r.tokens;
  return out;
}

// Every candidate of this replica's linears reading one site: one factor of
// the site's damped Hessian, shared by every spec and linear and by the worker
// threads (pipeline/measure_site.h).
void measure_site_linears(PassContext& ctx, int layer, InputSite site, const SiteStatistics& stats,
                          const RecipeSpace& space, std::map<int, LayerMeasurement>& rows) {
  const auto linears = decoder_linears(ctx.config);
  std::vector<int> mine;
  for (int j = 0; j < static_cast<int>(linears.size()); ++j)
    if (linears[j].input == site && mine_to_do(ctx, layer, j)) mine.push_back(j);
  if (mine.empty()) return;
  Timer timer;
  std::vector<MatrixF> weights;
  weights.reserve(mine.size());
  std::vector<SiteLinear> site_linears;
  for (int j : mine) {
    const LinearSpec& spec = linears[static_cast<size_t>(j)];
    weights.push_back(read_linear_weight(ctx.checkpoint, spec, layer));
  }
  for (size_t i = 0; i < mine.size(); ++i)
    site_linears.push_back({layer_tensor_name(layer, linears[static_cast<size_t>(mine[i])].name), &weights[i]});
  auto measured = measure_site(ctx.backend, ctx.options, stats, site_linears, space);
  for (size_t i = 0; i < mine.size(); ++i) rows[mine[i]] = std::move(measured[i]);
  ctx.times.measure += timer.seconds();
  AMLQ_LOG_INFO("  site {} of layer {}: {} linear(s) x specs measured in {:.2f}s", input_site_name(site), layer,
                mine.size(), timer.seconds());
}

MeasurementTable rows_of_layer_file(const PassContext& ctx, int layer, const std::string& hash) {
  CheckpointCheck check;
  const auto payload = read_checkpoint_json(ctx.work.measure_layer(layer), kMeasureLayerKind, hash, check);
  if (!payload) AMLQ_FAIL(Input, "{}", check.reason);
  return table_from_json(payload->at("rows"), ctx.work.measure_layer(layer));
}

// Gathers the rows this replica measured for `layer` on replica 0 of the stage,
// which writes the layer's checkpoint.
void gather_and_write_layer(PassContext& ctx, int layer, const std::map<int, LayerMeasurement>& mine,
                            const std::string& hash) {
  nlohmann::json message = nlohmann::json::array();
  for (const auto& [j, row] : mine) message.push_back({j, table_to_json({row})});
  const std::string text = message.dump();
  const auto blobs = ctx.stage_replicas.gather_bytes(std::as_bytes(std::span(text.data(), text.size())), 0);
  if (ctx.topo.replica != 0) return;
  const size_t per_layer = decoder_linears(ctx.config).size();
  MeasurementTable rows(per_layer);
  for (const auto& blob : blobs)
    for (const auto& entry : nlohmann::json::parse(std::string(reinterpret_cast<const char*>(blob.data()), blob.size())))
      rows[entry.at(0).get<size_t>()] = table_from_json(entry.at(1), "measurement message").at(0);
  for (const auto& row : rows) AMLQ_ASSERT(!row.candidates.empty(), "layer {}: a linear was measured by nobody", layer);
  write_checkpoint_json(ctx.work.measure_layer(layer), kMeasureLayerKind, hash,
                        {{"layer", layer}, {"rows", table_to_json(rows)}});
}

void write_statistics_file(PassContext& ctx, int layer, LayerStatistics& stats, const std::string& hash,
                           const std::string& description) {
  CalibrationStats one;
  one.input_hash = hash;
  one.description = description;
  LayerCalibration cal;
  cal.layer = layer;
  for (InputSite site : kSites) cal.sites[static_cast<size_t>(site)] = take_site(stats, site);
  one.layers.push_back(std::move(cal));
  if (ctx.topo.replica != 0) return;
  const std::string path = ctx.work.calib_layer(layer);
  write_calibration_stats(path, one);
  write_seal(path, kCalibLayerKind, hash);
}

}  // namespace

std::vector<char> agree_done_layers(const PassContext& ctx, const std::function<bool(int)>& valid) {
  std::vector<uint8_t> flags(static_cast<size_t>(ctx.config.num_layers), 0);
  if (ctx.topo.replica == 0) {
    const LayerBlock mine = ctx.topo.my_layers();
    for (int layer = mine.first; layer < mine.end; ++layer) flags[static_cast<size_t>(layer)] = valid(layer) ? 1 : 0;
  }
  std::vector<char> done(flags.size(), 0);
  for (const auto& blob : ctx.world.allgather_bytes(std::as_bytes(std::span(flags.data(), flags.size())))) {
    AMLQ_ASSERT(blob.size() == flags.size(), "layer flags of {} bytes, expected {}", blob.size(), flags.size());
    for (size_t i = 0; i < flags.size(); ++i) done[i] = static_cast<char>(done[i] | static_cast<char>(blob[i]));
  }
  return done;
}

std::map<int, MeasurementTable> measure_pass(PassContext& ctx, const RecipeSpace& space,
                                             const std::function<std::string(int)>& layer_hash,
                                             const std::vector<char>& done, bool statistics_only) {
  const LayerBlock mine = ctx.topo.my_layers();
  auto pending = [&](int first, int end) {
    for (int l = first; l < end; ++l)
      if (!done[static_cast<size_t>(l)]) return true;
    return false;
  };
  const bool stage_pending = pending(mine.first, mine.end);
  const bool later_pending = !ctx.topo.last_stage() && pending(mine.end, ctx.config.num_layers);
  MatrixF hidden;
  if (stage_pending || later_pending) hidden = fp_stage_inputs(ctx, later_pending, stage_pending);
  // The statistics walk is this rank's memory turn; its inputs are in by now.
  ctx.turns.wait(kMeasureTurnTag);
  {
    if (stage_pending) {
      const RopeTables rope = make_rope_tables(ctx.config, ctx.options.calib_spec.seqlen);
      int last = mine.end - 1;
      while (done[static_cast<size_t>(last)]) --last;
      for (int layer = mine.first; layer <= last; ++layer) {
        Timer layer_timer;
        DecoderLayerWeights weights = load_decoder_layer(ctx.checkpoint, ctx.config, layer);
        if (done[static_cast<size_t>(layer)]) {
          forward_layer_in_place(ctx, weights, rope, hidden, nullptr);
          AMLQ_LOG_INFO("[{}/{}] layer {}: checkpoint reused, forward only", layer - mine.first + 1, mine.size(), layer);
          continue;
        }
        LayerStatistics stats(ctx.config, ctx.options.samples_per_block);
        log_forward_rate(ctx, layer, hidden.rows(), forward_layer_in_place(ctx, weights, rope, hidden, &stats));
        weights = DecoderLayerWeights();  // measure reads each linear again, one at a time
        release_forward_buffers();
        stats.finish();
        Timer merge_timer;
        merge_replica_statistics(ctx.stage_replicas, stats);
        ctx.times.statistics += merge_timer.seconds();
        const std::string hash = layer_hash(layer);
        if (statistics_only) {
          write_statistics_file(ctx, layer, stats, hash, "");
        } else {
          std::map<int, LayerMeasurement> rows;
          for (InputSite site : kSites) {
            const SiteStatistics site_stats = take_site(stats, site);  // freed after its linears are measured
            measure_site_linears(ctx, layer, site, site_stats, space, rows);
          }
          gather_and_write_layer(ctx, layer, rows, hash);
          fail_if_asked(ctx, "measure");
          slow_if_asked(ctx, "measure");
        }
        AMLQ_LOG_INFO("[{}/{}] layer {}: {} in {:.1f}s", layer - mine.first + 1, mine.size(), layer,
                      statistics_only ? "statistics written" : "measured", layer_timer.seconds());
      }
    }
  }
  ctx.turns.done(kMeasureTurnTag);
  std::map<int, MeasurementTable> out;
  if (ctx.topo.replica == 0 && !statistics_only)
    for (int layer = mine.first; layer < mine.end; ++layer) out[layer] = rows_of_layer_file(ctx, layer, layer_hash(layer));
  return out;
}

namespace {

// The candidate the plan chose for linear j of `layer`.
const Candidate& chosen(const MeasurementTable& table, const SearchResult& plan, const ModelConfig& config, int layer,
                        int j) {
  const size_t g = static_cast<size_t>(layer) * decoder_linears(config).size() + static_cast<size_t>(j);
  AMLQ_ASSERT(g < table.size() && g < plan.choice.size(), "linear {} of layer {} is not in the plan", j, layer);
  return table[g].candidates.at(static_cast<size_t>(plan.choice[g]));
}

// What the plans packed at one site share: the factors of the site's damped
// Hessian (one per column order) and every linear already packed, by (linear,
// candidate), so that a configuration two plans chose is quantized once.
struct SiteShared {
  std::map<bool, std::unique_ptr<SiteFactor>> factors;
  std::map<std::pair<int, int>, PackedLinear> packed;
};

// Quantizes this replica's linears of one site with their chosen candidates;
// every replica of the stage then holds all of the site's packed linears.
void pack_site(PassContext& ctx, int layer, InputSite site, const SiteStatistics& stats,
               const MeasurementTable& table, const SearchResult& plan, std::map<int, PackedLinear>& packed,
               SiteShared& shared) {
  const auto linears = decoder_linears(ctx.config);
  const size_t per_layer = linears.size();
  auto choice_of = [&](int j) { return plan.choice.at(static_cast<size_t>(layer) * per_layer + static_cast<size_t>(j)); };
  std::vector<int> mine, all;
  for (int j = 0; j < static_cast<int>(linears.size()); ++j) {
    if (linears[j].input != site) continue;
    all.push_back(j);
    if (mine_to_do(ctx, layer, j)) mine.push_back(j);
  }
  Timer timer;
  // One factor of the site's damped Hessian per column order the chosen specs
  // use, shared by the site's linears (the result is the same as factoring per linear).
  if (!ctx.options.rtn)
    for (int j : mine) {
      if (shared.packed.count({j, choice_of(j)})) continue;
      const bool act_order = chosen(table, plan, ctx.config, layer, j).spec.act_order;
      if (!shared.factors.count(act_order))
        shared.factors[act_order] = ctx.backend.factor_site(stats.hessian, act_order, ctx.options.gptq);
    }
  std::vector<PackedLinear> results(mine.size());
  parallel_for(static_cast<int>(mine.size()), ctx.options.threads, [&](int i) {
    const int j = mine[static_cast<size_t>(i)];
    if (const auto hit = shared.packed.find({j, choice_of(j)}); hit != shared.packed.end()) {
      results[static_cast<size_t>(i)] = hit->second;  // another plan chose the same
      return;
    }
    const LinearSpec& spec = linears[static_cast<size_t>(j)];
    const MatrixF w = read_linear_weight(ctx.checkpoint, spec, layer);
    VectorF bias;
    if (spec.has_bias) {
      const TensorF32 b = ctx.checkpoint.read_f32(linear_bias_name(layer, spec.name));
      bias = Eigen::Map<const VectorF>(b.data.data(), static_cast<Eigen::Index>(b.data.size()));
    }
    const Candidate& c = chosen(table, plan, ctx.config, layer, j);
    results[static_cast<size_t>(i)] =
        pack_linear_choice(ctx.backend, ctx.options, layer_tensor_name(layer, spec.name), w, bias, stats, c,
                           shared.factors.count(c.spec.act_order) ? shared.factors.at(c.spec.act_order).get() : nullptr);
    const auto& p = results[static_cast<size_t>(i)];
    AMLQ_LOG_INFO("  {} {} r{} bpw={:.3f} eps={:.2e}", p.name, c.spec.label(), c.rank, p.bpw, p.eps);
  });
  ctx.times.pack += timer.seconds();
  // Exchange: in replica order, each replica's packed linears of this site.
  std::vector<std::byte> blob;
  for (size_t i = 0; i < mine.size(); ++i) {
    const auto one = serialize_packed_linear(results[i]);
    const uint64_t n = one.size();
    const int64_t j = mine[i];
    const auto* p = reinterpret_cast<const std::byte*>(&j);
    blob.insert(blob.end(), p, p + sizeof(j));
    p = reinterpret_cast<const std::byte*>(&n);
    blob.insert(blob.end(), p, p + sizeof(n));
    blob.insert(blob.end(), one.begin(), one.end());
  }
  for (const auto& b : ctx.stage_replicas.allgather_bytes(blob)) {
    std::span<const std::byte> in(b);
    while (!in.empty()) {
      int64_t j = 0;
      uint64_t n = 0;
      AMLQ_ASSERT(in.size() >= 16, "truncated packed-linear exchange");
      std::memcpy(&j, in.data(), 8);
      std::memcpy(&n, in.data() + 8, 8);
      in = in.subspan(16);
      AMLQ_ASSERT(n <= in.size(), "truncated packed-linear exchange");
      packed[static_cast<int>(j)] = deserialize_packed_linear(in.first(static_cast<size_t>(n)));
      in = in.subspan(static_cast<size_t>(n));
    }
  }
  for (int j : all) {
    AMLQ_ASSERT(packed.count(j), "layer {}: linear {} was packed by nobody", layer, j);
    shared.packed.emplace(std::make_pair(j, choice_of(j)), packed.at(j));
  }
}

void write_pack_file(PassContext& ctx, const WorkDir& work, int layer, const std::map<int, PackedLinear>& packed,
                     const std::string& hash) {
  if (ctx.topo.replica != 0) return;
  QuantizedModel part;
  part.header.source_model = ctx.options.model;
  part.header.config_json = ctx.config.source_json;
  part.header.quantizer = ctx.options.quantizer_name();
  part.header.lowrank_method = lowrank_method_name(ctx.options.lowrank);
  part.header.extra_json = nlohmann::json{{"input_hash", hash}, {"layer", layer}}.dump();
  for (const auto& [j, p] : packed) part.linears.push_back(p);
  const std::string path = work.pack_layer(layer);
  remove_checkpoint(path);
  write_quantized_model(path, part);
  write_seal(path, kPackLayerKind, hash);
}

}  // namespace

// The layer as the next layer sees it once `packed` linears replace their FP
// weights: W_hat + A B as dense float32 (bias unchanged).
void replace_with_packed(DecoderLayerWeights& weights, const std::map<int, PackedLinear>& packed) {
  for (const auto& [j, p] : packed) weights.linears[static_cast<size_t>(j)].dense = dequantize(p, true);
}

std::map<int, PackedLinear> read_pack_file(const WorkDir& work, const ModelConfig& config, int layer) {
  const QuantizedModel part = read_quantized_model(work.pack_layer(layer), true);
  std::map<int, PackedLinear> out;
  const auto linears = decoder_linears(config);
  for (const auto& p : part.linears)
    for (int j = 0; j < static_cast<int>(linears.size()); ++j)
      if (p.name == layer_tensor_name(layer, linears[static_cast<size_t>(j)].name)) out[j] = p;
  AMLQ_REQUIRE(out.size() == linears.size(), "{}: holds {} of layer {}'s {} linears", work.pack_layer(layer),
               out.size(), layer, linears.size());
  return out;
}

void pack_pass(PassContext& ctx, const MeasurementTable& table, const std::vector<PackTarget>& targets) {
  const LayerBlock mine = ctx.topo.my_layers();
  const SequentialMode mode = ctx.options.sequential;
  const bool sequential = mode != SequentialMode::None;
  AMLQ_ASSERT(!targets.empty() && (!sequential || targets.size() == 1),
              "the pack pass packs {} plans at once; sequential modes pack one", targets.size());
  // A layer is done once every plan has it.
  std::vector<char> done(static_cast<size_t>(ctx.config.num_layers), 1);
  for (const auto& t : targets)
    for (size_t l = 0; l < done.size(); ++l) done[l] = done[l] && t.done.at(l);
  auto pending = [&](int first, int end) {
    for (int l = first; l < end; ++l)
      if (!done[static_cast<size_t>(l)]) return true;
    return false;
  };
  const bool stage_pending = pending(mine.first, mine.end);
  const bool later_pending = !ctx.topo.last_stage() && pending(mine.end, ctx.config.num_layers);
  // A rank with nothing to do still takes its turn, so that the next stage's waits on it.
  auto idle_turn = [&] {
    ctx.turns.wait(kPackTurnTag);
    ctx.turns.done(kPackTurnTag);
  };
  if (!stage_pending && !later_pending) return idle_turn();

  MatrixF hidden;
  // The inputs of this stage's first layer. FP statistics: the measure pass's
  // pipeline again (and the next stage is fed from it). Sequential: whatever the
  // earlier stages' quantized layers produced, received before the walk.
  int last = mine.end - 1;
  if (!sequential) {
    hidden = fp_stage_inputs(ctx, later_pending, stage_pending);
    if (!stage_pending) return idle_turn();
    while (done[static_cast<size_t>(last)]) --last;
  } else {
    const Eigen::Index rows = sample_rows(ctx, ctx.share.size());
    if (ctx.topo.first_stage()) {
      hidden = embed_share(ctx);
    } else {
      hidden.resize(rows, ctx.config.hidden_size);
      for (int mb = 0; mb < micro_batches(ctx); ++mb) recv_rows(ctx, hidden, mb, prev_rank(ctx), kPackPassTag);
    }
    if (!later_pending)
      while (done[static_cast<size_t>(last)]) --last;
  }
  const RopeTables rope = make_rope_tables(ctx.config, ctx.options.calib_spec.seqlen);
  const auto linears = decoder_linears(ctx.config);
  ctx.turns.wait(kPackTurnTag);  // the inputs are in: this rank's memory turn
  for (int layer = mine.first; layer <= last; ++layer) {
    Timer layer_timer;
    DecoderLayerWeights weights = load_decoder_layer(ctx.checkpoint, ctx.config, layer);
    // Sequential walks send the stage's outputs on from the last layer's forward.
    std::function<void(int)> send_on;
    if (sequential && layer == mine.end - 1 && later_pending)
      send_on = [&](int mb) { send_rows(ctx, hidden, mb, next_rank(ctx), kPackPassTag); };
    if (done[static_cast<size_t>(layer)]) {
      if (sequential) replace_with_packed(weights, read_pack_file(targets.front().work, ctx.config, layer));
      forward_layer_in_place(ctx, weights, rope, hidden, nullptr, {}, send_on);
      AMLQ_LOG_INFO("[{}/{}] layer {}: pack checkpoint reused, forward only", layer - mine.first + 1, mine.size(),
                    layer);
      continue;
    }
    std::vector<std::map<int, PackedLinear>> packed(targets.size());
    if (mode == SequentialMode::True) {
      // Each site's statistics through the linears already quantized before it.
      for (InputSite site : kSites) {
        HessianAccumulator acc(input_site_dim(ctx.config, site), ctx.options.samples_per_block);
        site_statistics(ctx, weights, rope, hidden, site, acc);
        acc.finish();
        Timer merge_timer;
        merge_replica_statistics(ctx.stage_replicas, acc);
        ctx.times.statistics += merge_timer.seconds();
        auto r = acc.take_result();
        const SiteStatistics stats{std::move(r.hessian), std::move(r.act_scale), r.tokens};
        std::map<int, PackedLinear> site_packed;
        SiteShared shared;
        pack_site(ctx, layer, site, stats, table, *targets.front().plan, site_packed, shared);
        replace_with_packed(weights, site_packed);
        packed.front().insert(site_packed.begin(), site_packed.end());
      }
      forward_layer_in_place(ctx, weights, rope, hidden, nullptr, {}, send_on);
    } else {
      LayerStatistics stats(ctx.config, ctx.options.samples_per_block);
      if (sequential) {
        log_forward_rate(ctx, layer, hidden.rows(),  // hidden stays the layer input
                         forward_layer_in_place(ctx, weights, rope, hidden, &stats, {}, {}, false));
      } else {
        // FP: hidden moves on through the FP layer
        log_forward_rate(ctx, layer, hidden.rows(), forward_layer_in_place(ctx, weights, rope, hidden, &stats));
        weights = DecoderLayerWeights();
      }
      release_forward_buffers();
      stats.finish();
      Timer merge_timer;
      merge_replica_statistics(ctx.stage_replicas, stats);
      ctx.times.statistics += merge_timer.seconds();
      // Every plan from the same statistics, site by site (a site's are freed after).
      for (InputSite site : kSites) {
        const SiteStatistics site_stats = take_site(stats, site);
        SiteShared shared;
        for (size_t k = 0; k < targets.size(); ++k)
          if (!targets[k].done.at(static_cast<size_t>(layer)))
            pack_site(ctx, layer, site, site_stats, table, *targets[k].plan, packed[k], shared);
      }
      if (sequential) {
        replace_with_packed(weights, packed.front());
        forward_layer_in_place(ctx, weights, rope, hidden, nullptr, {}, send_on);
      }
    }
    Timer write_timer;
    for (size_t k = 0; k < targets.size(); ++k)
      if (!targets[k].done.at(static_cast<size_t>(layer)))
        write_pack_file(ctx, targets[k].work, layer, packed[k], targets[k].layer_hash(layer));
    ctx.times.write += write_timer.seconds();
    fail_if_asked(ctx, "pack");
    slow_if_asked(ctx, "pack");
    AMLQ_LOG_INFO("[{}/{}] layer {}: packed in {:.1f}s{}", layer - mine.first + 1, mine.size(), layer,
                  layer_timer.seconds(), targets.size() > 1 ? fmt::format(" ({} plans)", targets.size()) : "");
  }
  ctx.turns.done(kPackTurnTag);
}

}  // namespace amlq
