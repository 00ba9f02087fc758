#include "pipeline/sensitivity.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "core/error.h"
#include "core/log.h"
#include "core/memory.h"
#include "core/timer.h"
#include "model/forward.h"
#include "model/model_weights.h"
#include "model/perplexity.h"
#include "model/rope.h"
#include "pipeline/distributed.h"

namespace amlq {
namespace {

// Stage-to-stage messages of this pass (clear of the other passes' tag ranges).
constexpr int kSensitivityTag = 16400;
constexpr int kVariants = kProbeVariants;
constexpr double kChunkBytes = 1024.0 * 1024 * 1024;
constexpr int kMaxChunk = 64;

struct Probe {
  int linear = 0;  // global index: layer * linears per layer + j
  MatrixF hidden;  // kVariants * windows sequences
};

// Standard normal draws from mt19937_64 by Box-Muller: specified to the bit by
// the standard library's engine (std::normal_distribution is not), so every rank
// layout and platform draws the same noise.
void fill_normal(MatrixF& m, uint64_t seed) {
  std::mt19937_64 engine(seed);
  auto uniform = [&] { return (static_cast<double>(engine() >> 11) + 0.5) * 0x1.0p-53; };
  const Eigen::Index n = m.size();
  float* out = m.data();
  for (Eigen::Index i = 0; i < n; i += 2) {
    const double r = std::sqrt(-2.0 * std::log(uniform())), t = 2.0 * M_PI * uniform();
    out[i] = static_cast<float>(r * std::cos(t));
    if (i + 1 < n) out[i + 1] = static_cast<float>(r * std::sin(t));
  }
}

uint64_t probe_seed(const PassContext& ctx, int linear) {
  return ctx.options.calib_spec.seed * 0x9E3779B97F4A7C15ull + 0x5EED0000ull + static_cast<uint64_t>(linear);
}

class ProbeRunner {
 public:
  ProbeRunner(PassContext& ctx, int windows)
      : ctx_(ctx),
        windows_(windows),
        seqlen_(ctx.options.calib_spec.seqlen),
        per_layer_(static_cast<int>(decoder_linears(ctx.config).size())),
        rope_(make_rope_tables(ctx.config, seqlen_)),
        chunk_(probes_per_chunk(ctx.config, windows, seqlen_)) {}

  Eigen::Index fp_rows() const { return static_cast<Eigen::Index>(windows_) * seqlen_; }

  // The probe of linear j of `layer`: the FP layer input through the layer with
  // noise added to that linear's output, once per variant. Variants run one at
  // a time (batch = the probe windows, as the FP walk), which keeps the forward
  // buffers at a quarter of one batch of all four.
  Probe start(const DecoderLayerWeights& weights, const MatrixF& fp_input, int layer, int j) const {
    Probe p;
    p.linear = layer * per_layer_ + j;
    const Eigen::Index rows = fp_rows();
    p.hidden.resize(kVariants * rows, fp_input.cols());
    const MatrixF& w = weights.linears[static_cast<size_t>(j)].dense;
    const VectorF& bias = weights.linears[static_cast<size_t>(j)].bias;
    MatrixF noise;  // X D^T scaled to the unit energy ||W X||^2, drawn on the first variant
    int variant = 0;
    const LinearOutputHook hook = [&](int linear, const MatrixF& x, MatrixF& y) {
      if (linear != j) return;
      if (noise.size() == 0) {
        // Noise in weight space, like a quantization error: iid Gaussian entries,
        // each row scaled by the RMS of its weights (a row's quantization step
        // follows its range). Its output X D^T is then correlated across tokens
        // the way E X is, which iid output noise is not (that barely moves
        // softmax attention). Every variant sees the same clean input.
        MatrixF delta(w.rows(), w.cols());
        fill_normal(delta, probe_seed(ctx_, p.linear));
        for (Eigen::Index r = 0; r < w.rows(); ++r)
          delta.row(r) *= static_cast<float>(std::sqrt(w.row(r).cast<double>().squaredNorm() / double(w.cols())));
        noise.noalias() = x * delta.transpose();
        // Scaled to exactly the normalized energy ||N||^2 = ||W X||^2 on these tokens.
        double signal = 0;
        for (Eigen::Index c = 0; c < y.cols(); ++c) {
          const double b = bias.size() != 0 ? static_cast<double>(bias(c)) : 0.0;
          signal += (y.col(c).cast<double>().array() - b).square().sum();
        }
        const double energy = noise.cast<double>().squaredNorm();
        noise *= static_cast<float>(energy > 0 ? std::sqrt(signal / energy) : 0.0);
      }
      const double scale = (variant % 2 == 0 ? 1.0 : -1.0) * std::sqrt(kProbeEnergies[variant / 2]);
      y += static_cast<float>(scale) * noise;
    };
    MatrixF part;
    for (variant = 0; variant < kVariants; ++variant) {
      part = fp_input;
      decoder_layer_forward(ctx_.backend, ctx_.config, weights, rope_, part, windows_, seqlen_, nullptr, &hook);
      p.hidden.middleRows(variant * rows, rows) = part;
    }
    return p;
  }

  void forward(const DecoderLayerWeights& weights, Probe& p) const {
    const Eigen::Index rows = fp_rows();
    MatrixF part;
    for (int v = 0; v < kVariants; ++v) {
      part = p.hidden.middleRows(v * rows, rows);
      decoder_layer_forward(ctx_.backend, ctx_.config, weights, rope_, part, windows_, seqlen_, nullptr);
      p.hidden.middleRows(v * rows, rows) = part;
    }
  }

  int chunk() const { return chunk_; }
  const RopeTables& rope() const { return rope_; }
  int windows() const { return windows_; }
  int seqlen() const { return seqlen_; }

 private:
  PassContext& ctx_;
  int windows_, seqlen_, per_layer_;
  RopeTables rope_;
  int chunk_;
};

}  // namespace

std::vector<double> block_nll(const PassContext& ctx, const ModelWeights& head, const MatrixF& hidden, int blocks,
                              const std::vector<std::vector<int32_t>>& windows) {
  AMLQ_ASSERT(!windows.empty(), "block_nll: no windows");
  const int seqlen = static_cast<int>(windows.front().size());
  const int n = static_cast<int>(windows.size());
  std::vector<double> out;
  MatrixF logits;
  for (int b = 0; b < blocks; ++b) {
    double sum = 0;
    for (int w = 0; w < n; ++w) {
      const Eigen::Index r0 = static_cast<Eigen::Index>(b * n + w) * seqlen;
      final_logits(ctx.backend, head, hidden.middleRows(r0, seqlen), logits);
      const MatrixF predicted = logits.topRows(seqlen - 1);
      sum += sum_token_nll(predicted, std::span(windows[static_cast<size_t>(w)]).subspan(1));
    }
    out.push_back(sum / (static_cast<double>(n) * (seqlen - 1)));
  }
  return out;
}

int probes_per_chunk(const ModelConfig& config, int windows, int seqlen) {
  const double probe_bytes = double(kVariants) * windows * seqlen * config.hidden_size * sizeof(float);
  return std::clamp(static_cast<int>(kChunkBytes / probe_bytes), 1, kMaxChunk);
}

ProbeSlope probe_slope(double increase_low, double increase_high) {
  const double e1 = kProbeEnergies[0], e2 = kProbeEnergies[1];
  ProbeSlope s;
  s.alpha = (e1 * increase_low + e2 * increase_high) / (e1 * e1 + e2 * e2);
  s.linearity = increase_low != 0 ? (increase_high / e2) / (increase_low / e1) : 0.0;
  return s;
}

std::vector<std::vector<int32_t>> held_out_windows(std::span<const int32_t> ids, const CalibrationSpec& calib,
                                                   int skip, int windows, std::string_view option, int seqlen) {
  if (windows <= 0) AMLQ_FAIL(Usage, "{} must be > 0 here, got {}", option, windows);
  if (seqlen <= 0) seqlen = calib.seqlen;
  if (calib.random_offsets) {
    // The same generator's next draws: offsets do not depend on seqlen, so the
    // probes' draws are skipped whatever length these windows have.
    CalibrationSpec spec = calib;
    spec.num_samples = calib.num_samples + skip + windows;
    spec.seqlen = seqlen;
    if (static_cast<int64_t>(ids.size()) < int64_t{seqlen} + 1)
      AMLQ_FAIL(Usage, "the calibration data holds {} ids: too few for a held-out window of {} ({})", ids.size(),
                seqlen, option);
    auto all = sample_calibration(ids, spec);
    return {all.end() - windows, all.end()};
  }
  // Consecutive windows: those after the calibration's and the skipped ones.
  const int64_t start = (int64_t{calib.num_samples} + skip) * calib.seqlen;
  if (static_cast<int64_t>(ids.size()) < start + int64_t{windows} * seqlen)
    AMLQ_FAIL(Usage,
              "the calibration data holds {} ids: too few for {} calibration windows plus {} held-out windows of {} "
              "(lower {}, or 0 to skip)",
              ids.size(), calib.num_samples, skip + windows, seqlen, option);
  std::vector<std::vector<int32_t>> out;
  for (int w = 0; w < windows; ++w) {
    const auto begin = ids.begin() + static_cast<ptrdiff_t>(start + int64_t{w} * seqlen);
    out.emplace_back(begin, begin + seqlen);
  }
  return out;
}

std::vector<std::vector<int32_t>> separate_windows(std::span<const int32_t> ids, const CalibrationSpec& calib,
                                                   int windows, int seqlen, const std::string& origin) {
  const CalibrationSpec spec{windows, seqlen, calib.seed, calib.random_offsets};
  const int64_t needed = calib.random_offsets ? int64_t{seqlen} + 1 : int64_t{windows} * seqlen;
  if (static_cast<int64_t>(ids.size()) < needed)
    AMLQ_FAIL(Input, "{}: holds {} token ids, too few for {} validation window(s) of {} ({})", origin, ids.size(),
              windows, seqlen, spec.describe());
  return sample_calibration(ids, spec);
}

std::vector<std::vector<int32_t>> probe_windows(std::span<const int32_t> ids, const CalibrationSpec& calib,
                                                int windows) {
  return held_out_windows(ids, calib, 0, windows, "--sensitivity-windows");
}

SensitivityResult sensitivity_pass(PassContext& ctx, const std::vector<std::vector<int32_t>>& windows_ids) {
  const Topology& topo = ctx.topo;
  const int per_layer = static_cast<int>(decoder_linears(ctx.config).size());
  const int total = ctx.config.num_layers * per_layer;
  const int last_rank = topo.rank_of(0, topo.stages - 1);
  std::vector<double> raw(static_cast<size_t>(2 * total + 1), 0.0);  // alpha..., linearity..., fp nll
  if (topo.replica == 0) {
    Timer timer;
    const int windows = ctx.options.sensitivity_windows;
    ProbeRunner runner(ctx, windows);
    const LayerBlock mine = topo.my_layers();
    const int prev = topo.first_stage() ? -1 : topo.rank_of(0, topo.stage - 1);
    const int next = topo.last_stage() ? -1 : topo.rank_of(0, topo.stage + 1);
    ModelWeights head;
    if (topo.last_stage()) {
      AMLQ_ASSERT(static_cast<int>(windows_ids.size()) == windows, "the last stage has {} probe windows, expected {}",
                  windows_ids.size(), windows);
      head = load_model_weights(ctx.checkpoint, ctx.config, mine.end, mine.end, false, true);
    }
    std::vector<std::vector<double>> scored(static_cast<size_t>(total));  // variant NLLs per linear
    int scored_count = 0, forwarded = 0;
    // Forwards probes that finished layer from-1 through this stage's layers
    // [from, end), then scores them (last stage) or sends them on.
    auto finish = [&](std::vector<Probe>& probes, int from) {
      if (probes.empty()) return;
      for (int layer = from; layer < mine.end; ++layer) {
        const DecoderLayerWeights weights = load_decoder_layer(ctx.checkpoint, ctx.config, layer);
        for (auto& p : probes) runner.forward(weights, p);
      }
      for (auto& p : probes) {
        if (next < 0) {
          scored[static_cast<size_t>(p.linear)] = block_nll(ctx, head, p.hidden, kVariants, windows_ids);
          ++scored_count;
        } else {
          MatrixF header(1, 1);
          header(0, 0) = static_cast<float>(p.linear);
          send_matrix(ctx.world, header, next, kSensitivityTag);
          send_matrix(ctx.world, p.hidden, next, kSensitivityTag);
          ++forwarded;
        }
      }
      probes.clear();
    };
    // 1. The earlier stages' probes, chunk by chunk; then their FP output.
    MatrixF fp;
    if (prev < 0) {
      std::vector<int32_t> ids;
      for (const auto& w : windows_ids) ids.insert(ids.end(), w.begin(), w.end());
      fp = embed_from_checkpoint(ctx.checkpoint, ctx.config, ids);
    } else {
      std::vector<Probe> chunk;
      for (;;) {
        const MatrixF header = recv_matrix(ctx.world, prev, kSensitivityTag);
        AMLQ_ASSERT(header.rows() == 1 && header.cols() == 1, "malformed sensitivity message from rank {}", prev);
        MatrixF hidden = recv_matrix(ctx.world, prev, kSensitivityTag);
        if (header(0, 0) < 0) {
          fp = std::move(hidden);
          break;
        }
        chunk.push_back({static_cast<int>(header(0, 0)), std::move(hidden)});
        if (static_cast<int>(chunk.size()) >= runner.chunk()) finish(chunk, mine.first);
      }
      finish(chunk, mine.first);
    }
    AMLQ_ASSERT(fp.rows() == runner.fp_rows() && fp.cols() == ctx.config.hidden_size,
                "FP probe input is {}x{}, expected {}x{}", fp.rows(), fp.cols(), runner.fp_rows(),
                ctx.config.hidden_size);
    // 2. This stage's own probes, started layer by layer from the FP walk.
    std::vector<Probe> pending;
    for (int layer = mine.first; layer < mine.end; ++layer) {
      Timer layer_timer;
      const DecoderLayerWeights weights = load_decoder_layer(ctx.checkpoint, ctx.config, layer);
      for (auto& p : pending) runner.forward(weights, p);
      for (int j = 0; j < per_layer; ++j) pending.push_back(runner.start(weights, fp, layer, j));
      decoder_layer_forward(ctx.backend, ctx.config, weights, runner.rope(), fp,
                            windows, runner.seqlen(), nullptr);
      const ProcessMemory memory = read_process_memory();
      AMLQ_LOG_DEBUG("sensitivity: layer {} done, {} probes pending, RSS {:.1f} MiB (peak {:.1f} MiB)", layer,
                     pending.size(), memory.rss / 1048576.0, memory.peak_rss / 1048576.0);
      if (static_cast<int>(pending.size()) >= runner.chunk()) finish(pending, layer + 1);
      AMLQ_LOG_INFO("[{}/{}] layer {}: sensitivity probes of its {} linears started ({:.1f}s)",
                    layer - mine.first + 1, mine.size(), layer, per_layer, layer_timer.seconds());
    }
    finish(pending, mine.end);
    if (next >= 0) {
      MatrixF header(1, 1);
      header(0, 0) = -1;
      send_matrix(ctx.world, header, next, kSensitivityTag);
      send_matrix(ctx.world, fp, next, kSensitivityTag);
      AMLQ_LOG_INFO("sensitivity: {} probe(s) sent on to rank {} ({:.1f}s)", forwarded, next, timer.seconds());
    } else {
      AMLQ_ASSERT(scored_count == total, "sensitivity: {} of {} probes reached the last stage", scored_count, total);
      const double fp_nll = block_nll(ctx, head, fp, 1, windows_ids).front();
      for (int g = 0; g < total; ++g) {
        const auto& nll = scored[static_cast<size_t>(g)];
        const ProbeSlope s = probe_slope(0.5 * (nll[0] + nll[1]) - fp_nll, 0.5 * (nll[2] + nll[3]) - fp_nll);
        raw[static_cast<size_t>(g)] = s.alpha;
        raw[static_cast<size_t>(total + g)] = s.linearity;
      }
      raw.back() = fp_nll;
      AMLQ_LOG_INFO("sensitivity: {} linears probed on {} window(s) of {} tokens, FP NLL {:.4f} ({:.1f}s)", total,
                    windows, runner.seqlen(), fp_nll, timer.seconds());
    }
  }
  release_forward_buffers();  // the probe batches' buffers are the largest of the run
  ctx.world.broadcast(std::as_writable_bytes(std::span(raw)), last_rank);
  SensitivityResult out;
  out.alpha.assign(raw.begin(), raw.begin() + total);
  out.linearity.assign(raw.begin() + total, raw.begin() + 2 * total);
  out.fp_nll = raw.back();
  // Probe noise can leave a barely sensitive linear at alpha <= 0, which would
  // tell the search its error is free: such alphas are raised to a floor of
  // 1% of the median.
  std::vector<double> sorted = out.alpha;
  std::sort(sorted.begin(), sorted.end());
  const double floor = std::max(1e-12, 0.01 * sorted[sorted.size() / 2]);
  for (double& a : out.alpha)
    if (!(a >= floor)) {
      a = floor;
      ++out.floored;
    }
  return out;
}

}  // namespace amlq
