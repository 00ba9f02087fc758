#include "pipeline/resources.h"
#include "pipeline/sensitivity.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "core/memory.h"
#include "core/parallel.h"
#include "model/hessian_accumulator.h"
#include "model/layer_statistics.h"
#include "pipeline/json_checkpoint.h"
#include "pipeline/measure_site.h"
#include "quant/packed_format.h"
#include "search/search.h"

namespace amlq {
namespace {

int64_t sq(int64_t n) { return n * n; }

struct Shapes {
  int64_t h, q, kv, f, vocab;
  int64_t layer_params;  // linears + norms (+ biases)
  std::vector<LinearSpec> linears;
};

Shapes shapes_of(const ModelConfig& c) {
  Shapes s;
  s.h = c.hidden_size;
  s.q = static_cast<int64_t>(c.num_heads) * c.head_dim;
  s.kv = static_cast<int64_t>(c.num_kv_heads) * c.head_dim;
  s.f = c.intermediate_size;
  s.vocab = c.vocab_size;
  s.linears = decoder_linears(c);
  const ParameterCount p = count_parameters(c);
  s.layer_params = p.per_layer_linear + p.per_layer_other;
  return s;
}

int64_t site_dim(const Shapes& s, InputSite site) {
  switch (site) {
    case InputSite::AttnIn:
    case InputSite::MlpIn: return s.h;
    case InputSite::AttnOut: return s.q;
    case InputSite::MlpOut: return s.f;
  }
  return s.h;
}

// Per worker thread, one linear (m x n, s = rows measured) measured at one
// spec against its site's shared factor (pipeline/measure_site.h): GPTQ's
// working copy, codes and the float panel of U, then, with low rank, the
// whitened error and its top eigenpairs (lowrank/spec_errors.h).
int64_t measure_working_set(int64_t m, int64_t n, const ResourceInputs& in) {
  const int64_t s = measured_row_count(m, in.measure_rows, in.measure_rows_min);
  const int64_t sn = s * n;
  const int64_t gptq = sn * 4 + sn + int64_t{128} * n * 4;
  if (!in.lowrank || in.max_rank <= 0) return gptq + sn * 8;
  const int64_t small = std::min(s, n), k = in.max_rank;
  const int64_t lowrank = sn * 9 + sq(small) * 8 + small * (small / 2 + k + k / 4) * 8 + (s + 2 * n) * k * 8;
  return std::max(gptq, lowrank);
}

// Pack of one linear: one GPTQ (the site's factor is shared), decompose_error
// (E and E L in fp64, its own copies of H and L, Gram and eigensolver), the
// packed copy and W_hat for eps.
int64_t pack_working_set(int64_t m, int64_t n, const ResourceInputs& in) {
  const int64_t mn = m * n;
  const int64_t gptq = mn * 4 + mn + int64_t{128} * n * 4 + mn * 4;
  if (!in.lowrank || in.max_rank <= 0) return gptq + mn * 8;
  const int64_t small = std::min(m, n);
  const int64_t lowrank = mn * 8 * 2 + sq(n) * 8 * 3 + sq(small) * 8 * 4;
  return mn * 5 + std::max(gptq - mn * 5, lowrank) + mn * 4;
}

double packed_bits_per_weight(const ResourceInputs& in) { return in.output_bpw; }

// Device buffers of one CudaBackend::quantize (kernels/cuda_backend.cc): W as
// given and gathered (fp32), codes, scales and zeros (groups of >= 32 columns),
// U (fp32), H and its permuted damped copy (fp64), the error block, and a
// cuSOLVER workspace (potrf/potri, estimated as 256 columns of fp64).
int64_t device_quantize_bytes(int64_t m, int64_t n, const ResourceInputs& in) {
  const int64_t mn = m * n;
  return mn * 4 * 2 + mn + (mn / 32) * 3 + sq(n) * (4 + 8 + 8) + n * 5 + m * in.gptq_block * 4 + n * 256 * 8;
}

// Device buffers of one CudaBackend::svd of an m x n fp64 matrix at rank k
// (kernels/linalg_ops.cc gram_svd): the matrix, the Gram matrix of the smaller
// side, syevd's workspace (1 + 6s + 2s^2 doubles) and eigenvalues, the projection.
int64_t device_svd_bytes(int64_t m, int64_t n, int64_t k) {
  const int64_t small = std::min(m, n), large = std::max(m, n);
  return m * n * 8 + sq(small) * 8 + (1 + 6 * small + 2 * sq(small)) * 8 + small * 8 + large * k * 8;
}

// One measure or pack task on the device: GPTQ, then (with low rank) the SVD of
// its error; the buffers of one call are freed before the next.
int64_t device_task_bytes(int64_t m, int64_t n, const ResourceInputs& in) {
  int64_t bytes = device_quantize_bytes(m, n, in);
  if (in.lowrank && in.max_rank > 0)
    bytes = std::max(bytes, device_svd_bytes(m, n, std::min<int64_t>(in.max_rank, std::min(m, n))));
  return bytes;
}

}  // namespace

int64_t PhaseMemory::total() const {
  int64_t t = 0;
  for (const auto& term : terms) t += term.bytes;
  return t;
}

ResourceInputs resource_inputs(const QuantizeOptions& options, int world_size, double weight_bytes, int specs,
                               int max_rank) {
  ResourceInputs in;
  in.world_size = world_size;
  in.replicas = options.replicas;
  in.layers_per_rank = options.layers_per_rank;
  in.samples = options.calib_spec.num_samples;
  in.seqlen = options.calib_spec.seqlen;
  in.batch = options.batch;
  in.sensitivity_windows = options.sensitivity_windows;
  in.validate_windows = options.validate_windows;
  in.validate_seqlen = options.validation_seqlen();
  in.pack_plans = options.validate_windows > 0
                      ? max_validated_plans(options.search, parse_validated_plans(options.validate_plans))
                      : 1;
  in.samples_per_block = options.samples_per_block;
  in.threads = resolve_threads(options.threads);
  in.weight_bytes = weight_bytes;
  in.max_rank = max_rank;
  in.lowrank = options.lowrank != LowRankMethod::None && max_rank > 0;
  in.specs = specs;
  in.measure_rows = options.measure_rows;
  in.measure_rows_min = options.measure_rows_min;
  in.output_bpw = std::max(2.0, options.target_bpw);
  in.sequential = options.sequential;
  return in;
}

ResourceInputs resource_inputs(const QuantizeOptions& options, int world_size, double weight_bytes,
                               const RecipeSpace& space) {
  int max_rank = 0;
  for (int r : space.ranks) max_rank = std::max(max_rank, r);
  ResourceInputs in = resource_inputs(options, world_size, weight_bytes, static_cast<int>(space.specs.size()), max_rank);
  bool act_order = false, plain = false;
  for (const auto& spec : space.specs) (spec.act_order ? act_order : plain) = true;
  in.column_orders = std::max(1, int{act_order} + int{plain});
  // Distinct plans need distinct configurations: a one-configuration space packs one.
  const int configurations = static_cast<int>(space.specs.size() * std::max<size_t>(1, space.ranks.size()));
  in.pack_plans = std::min(in.pack_plans, std::max(1, configurations));
  return in;
}

namespace {

// RTN is plain round-to-nearest: without error feedback act-order only regroups
// the columns, which no RTN baseline does (issue 15: stories260K 3b-g32 188.3
// act-ordered vs 198.7 plain), so every spec loses its act-order and static groups.
QuantSpec plain(QuantSpec spec) {
  spec.act_order = false;
  spec.static_groups = false;
  return spec;
}

RecipeSpace plain_for_rtn(RecipeSpace space) {
  std::vector<QuantSpec> specs;
  for (const QuantSpec& spec : space.specs)
    if (std::find(specs.begin(), specs.end(), plain(spec)) == specs.end()) specs.push_back(plain(spec));
  space.specs = std::move(specs);
  return space;
}

}  // namespace

std::vector<ListedChoice> listed_plan(const QuantizeOptions& options) {
  AMLQ_ASSERT(options.search.starts_with(kPlanSearchPrefix), "search '{}' is not plan:<file>", options.search);
  std::vector<ListedChoice> listed = read_listed_plan(options.search.substr(kPlanSearchPrefix.size()));
  if (options.rtn)
    for (ListedChoice& c : listed) c.spec = plain(c.spec);
  return listed;
}

RecipeSpace listed_space(const std::string& name, const std::vector<ListedChoice>& listed) {
  RecipeSpace space;
  space.name = name;
  for (const ListedChoice& c : listed) {
    if (std::find(space.specs.begin(), space.specs.end(), c.spec) == space.specs.end()) space.specs.push_back(c.spec);
    if (std::find(space.ranks.begin(), space.ranks.end(), c.rank) == space.ranks.end()) space.ranks.push_back(c.rank);
  }
  std::sort(space.ranks.begin(), space.ranks.end());
  return space;
}

RecipeSpace measured_space(const QuantizeOptions& options) {
  // listed_plan has made the plan's specs plain under rtn already.
  if (options.search.starts_with(kPlanSearchPrefix)) return listed_space(options.search, listed_plan(options));
  RecipeSpace space;
  if (options.search.starts_with("uniform:")) {
    const auto [spec, rank] = parse_uniform_search(options.search);
    space.name = options.search;
    space.specs = {spec};
    space.ranks = {0};
    if (rank > 0) space.ranks.push_back(rank);
  } else {
    space = load_recipe_space(options.recipes);
  }
  return options.rtn ? plain_for_rtn(std::move(space)) : space;
}

std::string resolved_search(const QuantizeOptions& options) {
  if (!options.rtn || !options.search.starts_with("uniform:")) return options.search;
  const auto [spec, rank] = parse_uniform_search(options.search);
  return "uniform:" + plain(spec).label() + (rank > 0 ? fmt::format("-r{}", rank) : "");
}

int64_t predicted_output_bytes(const ModelConfig& config, const ResourceInputs& in) {
  const ParameterCount p = count_parameters(config);
  const double packed = static_cast<double>(p.quantized()) * packed_bits_per_weight(in) / 8.0;
  const double other = static_cast<double>(p.total() - p.quantized()) * in.weight_bytes;
  return static_cast<int64_t>(packed + other);
}

std::vector<RankPrediction> predict_resources(const ModelConfig& config, const ResourceInputs& in) {
  const Shapes s = shapes_of(config);
  std::vector<RankPrediction> out;
  const Topology layout = make_topology(config, 0, in.world_size, in.replicas, in.layers_per_rank);
  for (int rank = 0; rank < in.world_size; ++rank) {
    const Topology topo = topology_of_rank(layout, rank);
    const LayerBlock layers = topo.my_layers();
    RankPrediction r;
    r.rank = rank;
    r.stage = topo.stage;
    r.replica = topo.replica;
    r.layers = layers;
    const int share = in.replicas == 1 ? in.samples : in.samples / in.replicas;
    r.samples = share;
    const int64_t tokens = static_cast<int64_t>(share) * in.seqlen;
    const int64_t mb_tokens = static_cast<int64_t>(std::min(in.batch, share)) * in.seqlen;

    // Always there: the runtime and the touched pages of the mapped checkpoint.
    const MemoryTerm runtime{"runtime (libraries, MPI, HDF5)", in.runtime_bytes};
    const int64_t mapped_layers = static_cast<int64_t>(layers.size() * s.layer_params * in.weight_bytes);
    const int64_t mapped_embedding =
        topo.first_stage() ? static_cast<int64_t>(std::min<int64_t>(s.vocab, tokens) * s.h * in.weight_bytes) : 0;
    const MemoryTerm mapped{"checkpoint pages (mmapped source tensors of this stage)", mapped_layers + mapped_embedding};

    // Forward + statistics of one layer.
    const MemoryTerm layer_f32{"one decoder layer in float32", s.layer_params * 4};
    const bool feeds_next = !topo.last_stage();
    const bool keeps_copy = feeds_next && !topo.first_stage();
    const MemoryTerm hidden{"calibration activations (hidden states of the share)",
                            tokens * s.h * 4 * (keeps_copy ? 2 : 1)};
    const int64_t buffers = mb_tokens * (4 * s.h + 2 * s.q + 2 * s.kv + 3 * s.f) * 4 +  // forward buffers
                            mb_tokens * (2 * s.h + s.q + s.f) * 4 +                    // captured inputs
                            mb_tokens * s.h * 4;                                       // micro-batch copy
    const MemoryTerm forward{"forward buffers of one micro-batch", buffers};
    const int64_t first_block = 0;
    const int64_t blocks = (share + in.samples_per_block - 1) / in.samples_per_block;
    const int matrices = HessianAccumulator::peak_matrices(first_block, std::max<int64_t>(blocks, 1));
    int64_t hessians = 0;
    for (InputSite site : {InputSite::AttnIn, InputSite::AttnOut, InputSite::MlpIn, InputSite::MlpOut})
      hessians += sq(site_dim(s, site)) * 8;
    // Merging replicas holds this replica's nodes, the merged ones and one in flight.
    const int merge_extra = in.replicas > 1 ? 1 : 0;
    const MemoryTerm stats{fmt::format("statistics of one layer ({} fp64 Hessian set(s))", matrices + merge_extra),
                           hessians * (matrices + merge_extra)};
    PhaseMemory fwd{"forward + statistics", {runtime, mapped, layer_f32, hidden, forward, stats}};
    r.phases.push_back(fwd);

    // Measure, site by site: the site's Hessian and the later sites' still held,
    // the site's weights, and each worker's working set.
    const InputSite order[] = {InputSite::AttnIn, InputSite::AttnOut, InputSite::MlpIn, InputSite::MlpOut};
    for (int k = 0; k < 4; ++k) {
      const InputSite site = order[k];
      int64_t held = 0;
      for (int later = k; later < 4; ++later) held += sq(site_dim(s, order[later])) * 8;
      int64_t site_weights = 0, worst = 0;
      int count = 0;
      for (const auto& l : s.linears) {
        if (l.input != site) continue;
        site_weights += static_cast<int64_t>(l.rows) * l.cols * 4;
        worst = std::max(worst, measure_working_set(l.rows, l.cols, in));
        ++count;
      }
      const int workers = std::min(in.threads, count * std::max(1, in.specs));
      // One factor U (fp64) per column order the space uses, shared by all workers.
      const int64_t factor = sq(site_dim(s, site)) * 8 * in.column_orders;
      PhaseMemory m{fmt::format("measure {}", input_site_name(site)),
                    {runtime,
                     mapped,
                     {"calibration activations (hidden states of the share)", tokens * s.h * 4},
                     {"Hessians still held (this site and later ones)", held},
                     {"weights of the site's linears (float32)", site_weights},
                     {fmt::format("the site's damped-Hessian factor(s) ({} column order(s))", in.column_orders), factor},
                     {fmt::format("measure working set x {} worker(s)", workers), worst * workers}}};
      r.phases.push_back(m);
    }

    // Pack, site by site as in measure (pack_site quantizes one site's linears at a
    // time, its workers split over them): the statistics still held (this site and
    // the later ones; with --sequential true only this site's, regenerated per
    // site), a layer in float32 (sequential modes), the site's working sets.
    for (int k = 0; k < 4; ++k) {
      const InputSite site = order[k];
      int64_t held = 0;
      for (int later = k; later < (in.sequential == SequentialMode::True ? k + 1 : 4); ++later)
        held += sq(site_dim(s, order[later])) * 8;
      held *= matrices + merge_extra;
      int64_t worst = 0;
      int count = 0;
      for (const auto& l : s.linears) {
        if (l.input != site) continue;
        worst = std::max(worst, pack_working_set(l.rows, l.cols, in));
        ++count;
      }
      const int workers = std::min(in.threads, std::max(1, count / std::max(1, in.replicas)));
      PhaseMemory pack{fmt::format("pack {}", input_site_name(site)),
                       {runtime,
                        mapped,
                        {"calibration activations (hidden states of the share)", tokens * s.h * 4},
                        {"one decoder layer in float32", in.sequential == SequentialMode::None ? 0 : s.layer_params * 4},
                        {"statistics still held for packing (this site and later ones)", held},
                        {fmt::format("the site's damped-Hessian factor(s) (up to {} column order(s))", in.column_orders),
                         sq(site_dim(s, site)) * 8 * in.column_orders},
                        {fmt::format("pack working set x {} worker(s)", workers), worst * workers}}};
      r.phases.push_back(pack);
    }

    // The passes that score NLL on the last stage (probes, validation) hold the
    // head in float32, its source pages (tied: the embedding's), one window's
    // logits and their copy.
    const int64_t scoring_head = topo.last_stage() ? static_cast<int64_t>(s.vocab * s.h * (4 + in.weight_bytes)) +
                                                         int64_t{std::max(in.seqlen, in.validate_seqlen)} * s.vocab * 4 * 2
                                                   : 0;

    // Sensitivity probes (pipeline/sensitivity.h), replica 0 only: the probes in
    // flight (a chunk, or the stage's own started ones: at most a chunk plus one
    // layer's linears), one layer in float32, the forward buffers of one probe
    // variant, the noise of the largest linear, and on the last stage the head in
    // float32 and one window's logits.
    if (in.sensitivity_windows > 0 && topo.replica == 0) {
      const int per_layer = static_cast<int>(s.linears.size());
      const int chunk = probes_per_chunk(config, in.sensitivity_windows, in.seqlen);
      const int64_t probe_tokens = int64_t{kProbeVariants} * in.sensitivity_windows * in.seqlen;
      const int own = std::min(per_layer * layers.size(), chunk + per_layer - 1);
      const int incoming = std::min(chunk, per_layer * layers.first);  // the earlier stages' probes
      const int in_flight = std::max(own, incoming);
      int64_t largest = 0, widest = 0;
      for (const auto& l : s.linears) {
        largest = std::max<int64_t>(largest, int64_t{l.rows} * l.cols);
        widest = std::max<int64_t>(widest, l.rows);
      }
      r.phases.push_back(
          {"sensitivity probes",
           {runtime,
            mapped,
            layer_f32,
            {fmt::format("{} probe(s) in flight ({} tokens each) and the FP walk", in_flight, probe_tokens),
             (in_flight * probe_tokens + probe_tokens / kProbeVariants) * s.h * 4},
            // Measured on tests/pipeline/memory_bound_test.sh: ~12 MiB above the
            // terms here at 14 probes of 16 MiB. One probe's size covered it by
            // 5 MiB, and a full parallel ctest once went past that: two probes.
            {"heap slack (two probes)", 2 * probe_tokens * s.h * 4},
            {"forward buffers of one probe variant (and its copy)",
             probe_tokens / kProbeVariants * (5 * s.h + 2 * s.q + 2 * s.kv + 3 * s.f) * 4},
            {"probe noise of the largest linear (D and X D^T)",
             largest * 4 + probe_tokens / kProbeVariants * widest * 4},
            {"head in float32 (and its pages) and one window's logits (last stage)", scoring_head}}});
    }

    // Plan validation (pipeline/plan_validation.h), replica 0 only: the FP and
    // every candidate's stream of held-out windows, the FP layer and one
    // candidate's copy in float32, the forward buffers of one stream, and on
    // the last stage the head and one window's logits.
    if (in.validate_windows > 0 && in.pack_plans > 1 && topo.replica == 0) {
      const int64_t tokens = int64_t{in.validate_windows} * in.validate_seqlen;
      r.phases.push_back(
          {"plan validation",
           {runtime,
            mapped,
            {"the FP layer and a candidate's copy in float32", 2 * s.layer_params * 4},
            {fmt::format("{} stream(s) of {} tokens (FP and each plan)", in.pack_plans + 1, tokens),
             (in.pack_plans + 1) * tokens * s.h * 4},
            {"forward buffers of --batch windows and their copy",
             int64_t{std::min(in.validate_windows, std::max(1, in.batch))} * in.validate_seqlen *
                 (6 * s.h + 2 * s.q + 2 * s.kv + 3 * s.f) * 4},
            {"head in float32 (and its pages) and one window's logits (last stage)", scoring_head}}});
    }

    // Write: passthrough copies (embedding on stage 0, head on the last stage) and one packed linear.
    int64_t passthrough = 0;
    if (topo.replica == 0) {
      if (topo.first_stage()) passthrough += static_cast<int64_t>(s.vocab * s.h * in.weight_bytes);
      if (topo.last_stage() && !config.tie_word_embeddings)
        passthrough += static_cast<int64_t>(s.vocab * s.h * in.weight_bytes);
    }
    int64_t largest_linear = 0;
    for (const auto& l : s.linears) largest_linear = std::max<int64_t>(largest_linear, int64_t{l.rows} * l.cols);
    PhaseMemory write{"write",
                      {runtime,
                       mapped,
                       {"passthrough tensors (copies and their pages)", passthrough * 2},
                       {"one packed linear", static_cast<int64_t>(largest_linear * packed_bits_per_weight(in) / 8)}}};
    r.phases.push_back(write);

    for (const auto& p : r.phases)
      if (p.total() > r.peak_host) {
        r.peak_host = p.total();
        r.peak_phase = p.phase;
      }
    // Outside its turn: waiting (inputs held), and before it possibly the FP
    // forward feeding the next stage.
    r.waiting = runtime.bytes + mapped.bytes + hidden.bytes;
    r.before_turn = feeds_next ? std::max(r.waiting, fwd.total() - stats.bytes) : r.waiting;

    if (in.device) {
      const MemoryTerm context{"CUDA context and library handles (estimate)", in.device_runtime_bytes};
      // Forward of one micro-batch: the largest single call (a linear uploads
      // x, W and y; attention q, k, v and its output).
      MemoryTerm fwd_op{"attention (q, k, v, output)", mb_tokens * (2 * s.q + 2 * s.kv) * 4};
      for (const auto& l : s.linears) {
        const int64_t bytes = mb_tokens * (int64_t{l.cols} + l.rows) * 4 + int64_t{l.rows} * l.cols * 4 +
                              (l.has_bias ? int64_t{l.rows} * 4 : 0);
        if (bytes > fwd_op.bytes) fwd_op = {fmt::format("linear {} (x, W, y)", l.name), bytes};
      }
      r.device_phases.push_back({"forward", {context, fwd_op}});
      // Statistics: one sample's X^T X added into the site's Hessian (x, H,
      // |x| sums, the fp64 staging chunk of at most 32 Mi values).
      MemoryTerm stats_op;
      for (InputSite site : {InputSite::AttnIn, InputSite::AttnOut, InputSite::MlpIn, InputSite::MlpOut}) {
        const int64_t n = site_dim(s, site);
        const int64_t bytes = in.seqlen * n * 4 + sq(n) * 8 + n * 8 +
                              std::min<int64_t>(in.seqlen, std::max<int64_t>(1, (int64_t{32} << 20) / n)) * n * 8;
        if (bytes > stats_op.bytes) stats_op = {fmt::format("Hessian accumulation, {} ({} x {})", input_site_name(site), n, n), bytes};
      }
      r.device_phases.push_back({"forward + statistics", {context, stats_op}});
      // Measure and pack, site by site: concurrent workers each in one task.
      for (const bool packing : {false, true}) {
        for (InputSite site : {InputSite::AttnIn, InputSite::AttnOut, InputSite::MlpIn, InputSite::MlpOut}) {
          int64_t worst = 0;
          std::string worst_name;
          int count = 0;
          for (const auto& l : s.linears) {
            if (l.input != site) continue;
            ++count;
            const int64_t bytes = device_task_bytes(l.rows, l.cols, in);
            if (bytes > worst) {
              worst = bytes;
              worst_name = l.name;
            }
          }
          if (count == 0) continue;
          const int workers = packing ? std::min(in.threads, count) : std::min(in.threads, count * std::max(1, in.specs));
          r.device_phases.push_back(
              {fmt::format("{} {}", packing ? "pack" : "measure", input_site_name(site)),
               {context,
                {fmt::format("GPTQ{} of {} x {} worker(s)", in.lowrank && in.max_rank > 0 ? " or low-rank SVD" : "",
                             worst_name, workers),
                 worst * workers}}});
        }
      }
      for (const auto& p : r.device_phases)
        if (p.total() > r.peak_device) {
          r.peak_device = p.total();
          r.peak_device_phase = p.phase;
        }
    }

    // Disk: per-layer pack checkpoints (packed size) of this stage's layers, on replica 0.
    const ParameterCount pc = count_parameters(config);
    if (topo.replica == 0)
      r.work_dir_bytes = static_cast<int64_t>(static_cast<double>(pc.per_layer_linear) * layers.size() *
                                              packed_bits_per_weight(in) / 8.0) +
                         layers.size() * 64 * 1024;  // measurement rows (JSON)
    // Bytes sent: hidden states to the next stage (once per pass), Hessian nodes
    // to the other replicas, packed linears to the other replicas.
    int64_t sent = 0;
    const int passes_feeding = in.sequential == SequentialMode::None ? 2 : 2;
    if (!topo.last_stage()) sent += tokens * s.h * 4 * passes_feeding;
    if (in.replicas > 1) {
      const int64_t my_nodes = hessians;  // about one node set per layer from each replica
      sent += static_cast<int64_t>(layers.size()) * my_nodes * (in.replicas - 1) * 2;
      sent += static_cast<int64_t>(static_cast<double>(pc.per_layer_linear) * layers.size() / in.replicas *
                                   packed_bits_per_weight(in) / 8.0 * (in.replicas - 1));
    }
    r.bytes_sent = sent;
    out.push_back(std::move(r));
  }
  return out;
}

int64_t host_peak(const std::vector<RankPrediction>& ranks, const std::vector<int>& on_host, bool turns) {
  int64_t sum = 0;
  std::map<int, std::vector<const RankPrediction*>> by_stage;
  for (int i : on_host) {
    const RankPrediction& r = ranks.at(static_cast<size_t>(i));
    sum += r.peak_host;
    by_stage[r.stage].push_back(&r);
  }
  if (!turns) return sum;
  int64_t worst = 0;
  for (const auto& [stage, group] : by_stage) {
    int64_t moment = 0;
    for (const auto& [other, members] : by_stage)
      for (const RankPrediction* r : members)
        moment += other == stage ? r->peak_host : other < stage ? r->waiting : r->before_turn;
    worst = std::max(worst, moment);
  }
  return std::min(sum, worst);
}

std::string format_prediction(const std::vector<RankPrediction>& ranks) {
  std::string out;
  for (const auto& r : ranks)
    out += fmt::format("rank {} (stage {}, replica {}): layers [{}, {}), {} samples; peak host memory {} ({}); {}"
                       "work dir {}; sends {}\n",
                       r.rank, r.stage, r.replica, r.layers.first, r.layers.end, r.samples, format_bytes(r.peak_host),
                       r.peak_phase,
                       r.device_phases.empty() ? std::string()
                                               : fmt::format("peak device memory {} ({}); ", format_bytes(r.peak_device),
                                                             r.peak_device_phase),
                       format_bytes(r.work_dir_bytes), format_bytes(r.bytes_sent));
  return out;
}

}  // namespace amlq
