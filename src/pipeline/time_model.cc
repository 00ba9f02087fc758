#include "pipeline/time_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "core/error.h"
#include <fmt/ranges.h>
#include "model/layer_statistics.h"
#include "pipeline/measure_site.h"
#include "pipeline/topology.h"

namespace amlq {
namespace {

constexpr InputSite kSites[] = {InputSite::AttnIn, InputSite::AttnOut, InputSite::MlpIn, InputSite::MlpOut};
constexpr int kHessianTile = 256;  // backend/cpu/cpu_ops.h kHessianTile

double sq(double x) { return x * x; }

// Aligned power-of-two runs that tile blocks [first, first + count): the tree
// nodes a replica holds after its share (HessianAccumulator::push).
int tree_nodes(int64_t first, int64_t count) {
  int nodes = 0;
  for (int64_t at = first; at < first + count;) {
    int64_t size = 1;
    while (at % (2 * size) == 0 && at + 2 * size <= first + count) size *= 2;
    at += size;
    ++nodes;
  }
  return std::max(nodes, 1);
}

// The costs of the operations of one rank, bound to the rates and the shapes.
class Model {
 public:
  Model(const ModelConfig& config, const TimeInputs& in, const OpRates& rates)
      : c_(config), in_(in), r_(rates), cuda_(in.device == ComputeDevice::Cuda), linears_(decoder_linears(config)) {
    const int threads = std::max(1, in.resources.threads);
    // All-thread rates at this rank's --threads: the measured parallel
    // efficiency carried over; memory bandwidth is not extrapolated upward.
    const double efficiency = r_.gemm_f32_all / (r_.gemm_f32_1t * std::max(1, r_.threads));
    gemm_all_ = r_.gemm_f32_1t * threads * std::min(1.0, efficiency);
    memory_all_ = threads >= r_.threads ? r_.memory_all
                                        : r_.memory_1t + (r_.memory_all - r_.memory_1t) * (threads - 1) /
                                                             std::max(1, r_.threads - 1);
    disk_write_ = r_.disk_write / std::max(1, in.ranks_per_node);
    disk_read_ = r_.disk_read / std::max(1, in.ranks_per_node);
    h_ = c_.hidden_size;
    q_ = static_cast<double>(c_.num_heads) * c_.head_dim;
    kv_ = static_cast<double>(c_.num_kv_heads) * c_.head_dim;
    f_ = c_.intermediate_size;
    seqlen_ = in.resources.seqlen;
    const ParameterCount p = count_parameters(c_);
    layer_params_ = static_cast<double>(p.per_layer_linear + p.per_layer_other);
    pack_rank_ = in.pack_rank;
    if (pack_rank_ < 0) {
      pack_rank_ = 0;
      for (int k : in.ranks) pack_rank_ = std::max(pack_rank_, k);
    }
    if (in.lowrank == LowRankMethod::None) pack_rank_ = 0;
  }

  double site_dim(InputSite site) const { return input_site_dim(c_, site); }

  // ---- forward of one decoder layer over `samples` samples ----------------

  // One linear m x n over `samples`, micro-batch by micro-batch.
  double linear(StageTime& t, const std::string& what, double m, double n, double samples) const {
    const double tokens = samples * seqlen_;
    double s = 0;
    if (cuda_) {
      const double mbs = std::ceil(samples / std::max(1, in_.resources.batch));
      const double copy = (tokens * n * 4 + mbs * m * n * 4 + tokens * m * 4) / r_.gpu_host_copy;
      t.add("device copies (forward operands)", copy);
      t.add(what, 2 * tokens * m * n / r_.gpu_gemm_f32 + mbs * 2 * r_.gpu_call_seconds);
      s = copy + 2 * tokens * m * n / r_.gpu_gemm_f32 + mbs * 2 * r_.gpu_call_seconds;
    } else {
      s = 2 * tokens * m * n / gemm_all_;
      t.add(what, s);
    }
    return s;
  }

  // Forward of the layer's parts in order; `upto` stops before computing that
  // site's input's consumers (true-sequential statistics recompute a prefix).
  double forward(StageTime& t, double samples, int upto_site = 4) const {
    const double tokens = samples * seqlen_;
    const double mbs = std::ceil(samples / std::max(1, in_.resources.batch));
    double s = 0;
    auto elementwise = [&](const std::string& what, double bytes) {
      double sec = cuda_ ? bytes / r_.gpu_host_copy + mbs * r_.gpu_call_seconds : bytes / memory_all_;
      t.add(cuda_ ? "device copies (forward operands)" : what, sec);
      s += sec;
    };
    // rms_norm (in, out), and the micro-batch copies in and out of `hidden`.
    elementwise("forward: norms, rope, residuals, swiglu", tokens * h_ * 4 * 4);
    if (upto_site <= 0) return s;
    s += linear(t, "forward: q/k/v GEMM", q_ + 2 * kv_, h_, samples);
    elementwise("forward: norms, rope, residuals, swiglu", tokens * (q_ + kv_) * 4 * 2);  // rope in place
    {
      // Causal QK^T and PV: 2 T^2 d per (sequence, head); softmax over T^2/2 scores.
      const double flops = 2 * samples * c_.num_heads * sq(seqlen_) * c_.head_dim;
      double sec = 0;
      if (cuda_) {
        sec = tokens * (2 * q_ + 2 * kv_) * 4 / r_.gpu_host_copy + flops / r_.gpu_gemm_f32 + mbs * r_.gpu_call_seconds;
      } else {
        sec = flops / gemm_all_ + samples * c_.num_heads * sq(seqlen_) / 2 * 12 / memory_all_;
      }
      t.add("forward: attention", sec);
      s += sec;
    }
    if (upto_site <= 1) return s;
    s += linear(t, "forward: o GEMM", h_, q_, samples);
    elementwise("forward: norms, rope, residuals, swiglu", tokens * h_ * 4 * 5);  // residual add, second norm
    if (upto_site <= 2) return s;
    s += linear(t, "forward: gate/up GEMM", 2 * f_, h_, samples);
    elementwise("forward: norms, rope, residuals, swiglu", tokens * f_ * 4 * 3);  // swiglu
    if (upto_site <= 3) return s;
    s += linear(t, "forward: down GEMM", h_, f_, samples);
    elementwise("forward: norms, rope, residuals, swiglu", tokens * h_ * 4 * 3);  // residual add
    return s;
  }

  // load_decoder_layer: the layer's tensors converted to float32 (one thread);
  // `cold`: the pages are read from disk first.
  double load_layer(StageTime& t, bool cold) const {
    double s = layer_params_ * (in_.resources.weight_bytes + 4) / r_.memory_1t;
    t.add("weights: load and convert to float32", s);
    if (cold) {
      const double d = layer_params_ * in_.resources.weight_bytes / disk_read_;
      t.add("weights: first read from disk", d);
      s += d;
    }
    return s;
  }

  // ---- statistics ---------------------------------------------------------

  // One site's Hessian over `samples` samples starting at global sample `first`
  // (HessianAccumulator::add: one backend call per sample; blocks and tree).
  double statistics(StageTime& t, InputSite site, double samples, int first) const {
    const double n = site_dim(site);
    const double tokens = seqlen_;
    double per_sample = 0;
    if (cuda_) {
      per_sample = (tokens * n * 4 + 2 * sq(n) * 8 + 2 * n * 8) / r_.gpu_host_copy + tokens * sq(n) / r_.gpu_gemm_f64 +
                   2 * sq(n) * 8 / r_.gpu_memory + 4 * r_.gpu_call_seconds;
    } else {
      // fp32 tiles of X^T X (lower triangle), each added to H in fp64: every
      // entry of H read and written once per sample.
      per_sample = tokens * n * (n + kHessianTile) / gemm_all_ + (sq(n) * 20 + tokens * n * 12) / memory_all_;
    }
    const int spb = std::max(1, in_.resources.samples_per_block);
    const double blocks = std::ceil(samples / spb);
    // A zeroed node per block, a merge per block, the final fold and scaling.
    const double tree = blocks * sq(n) * 8 / memory_all_ +
                        (blocks + tree_nodes(first / spb, static_cast<int64_t>(blocks))) * sq(n) * 24 / r_.memory_1t;
    t.add(fmt::format("statistics: {} Hessian", input_site_name(site)), samples * per_sample);
    t.add("statistics: blocks and tree", tree);
    return samples * per_sample + tree;
  }

  // merge_replica_statistics: every replica's nodes broadcast, then merged.
  double merge(StageTime& t, InputSite site, double samples, int first) const {
    const int replicas = in_.resources.replicas;
    if (replicas <= 1) return 0;
    const int spb = std::max(1, in_.resources.samples_per_block);
    const double nodes = tree_nodes(first / spb, static_cast<int64_t>(std::ceil(samples / spb)));
    const double bytes = sq(site_dim(site)) * 8 * nodes * replicas;
    const double s = bytes / r_.network + nodes * replicas * sq(site_dim(site)) * 24 / r_.memory_1t;
    t.add("statistics: merge across replicas", s);
    return s;
  }

  // ---- measure and pack of one linear --------------------------------------

  // Seconds of one backend quantize (GPTQ or RTN) of m x n: host part and device part.
  struct Split {
    double host = 0, device = 0;
    double total() const { return host + device; }
  };

  Split quantize(StageTime& t, double m, double n, bool factor) const {
    Split s;
    const double mn = m * n;
    // Input checks (finite scans), W^T, codes.
    s.host += (mn * 4 + sq(n) * 8 + mn * 9 * 2) / r_.memory_1t;
    t.add("GPTQ: copies and checks", s.host);
    if (in_.rtn) return s;
    const double lazy = gptq_lazy_flops(m, n, 128);
    if (cuda_) {
      const double copy = (mn * 4 + sq(n) * 8 + mn + mn / 8) / r_.gpu_host_copy;
      const double fac = factor ? (4.0 / 3.0) * n * n * n / r_.gpu_potrf_f64 : 0;
      const double upd = lazy / r_.gpu_gemm_f32 + std::ceil(n / 128) * 3 * r_.gpu_call_seconds;
      t.add("GPTQ: device copies", copy);
      if (factor) t.add("GPTQ: Cholesky + inverse (per spec)", fac);
      t.add("GPTQ: column loop + lazy updates (device)", upd);
      s.device += copy + fac + upd;
    } else {
      // The permuted, reversed and damped copies of H.
      const double copies = sq(n) * 8 * 4 / r_.memory_1t;
      const double fac = factor ? n * n * n / 3 / r_.cholesky_f64_1t + n * n * n / 3 / r_.trinv_f64_1t : 0;
      const double upd = lazy / r_.gptq_update_1t;
      const double columns = mn / r_.gptq_columns_1t;
      t.add("GPTQ: copies and checks", copies);
      if (factor) t.add("GPTQ: Cholesky + inverse (per spec)", fac);
      t.add("GPTQ: lazy updates", upd);
      t.add("GPTQ: column loop", columns);
      s.host += copies + fac + upd + columns;
    }
    return s;
  }

  // Top-k SVD of an m x n fp64 matrix (Backend::svd: Gram matrix of the smaller side, eigensolver, projection).
  Split svd(StageTime& t, double m, double n, double k) const {
    Split s;
    const double small = std::min(m, n), large = std::max(m, n);
    if (cuda_) {
      const double copy = (m * n * 8 + (m + n) * k * 8 + small * 8) / r_.gpu_host_copy;
      const double gram = large * sq(small) / r_.gpu_gemm_f64;
      const double eig = 9 * small * small * small / r_.gpu_syevd_f64;
      const double proj = 2 * large * small * k / r_.gpu_gemm_f64 + 4 * r_.gpu_call_seconds;
      t.add("low rank: device copies", copy);
      t.add("low rank: Gram matrix", gram);
      t.add("low rank: eigensolver", eig);
      t.add("low rank: projection", proj);
      s.device = copy + gram + eig + proj;
    } else {
      const double gram = large * sq(small) / r_.gemm_f64_1t;
      const double eig = 9 * small * small * small / r_.eigensolver_f64_1t;
      const double proj = 2 * large * small * k / r_.gemm_f64_1t;
      t.add("low rank: Gram matrix", gram);
      t.add("low rank: eigensolver", eig);
      t.add("low rank: projection", proj);
      s.host = gram + eig + proj;
    }
    return s;
  }

  // decompose_error at rank k (host except the SVD).
  Split decompose(StageTime& t, double m, double n, double k, bool factor) const {
    Split s;
    const double mn = m * n;
    double host = mn * 16 / r_.memory_1t;  // E in fp64
    if (in_.lowrank == LowRankMethod::Whiten) {
      const double copies = sq(n) * 8 * 6 / r_.memory_1t;  // H, damped copy, L
      const double fac = factor ? n * n * n / 3 / r_.cholesky_f64_1t : 0;
      const double el = m * n * n / r_.gemm_f64_1t;  // E L (triangular)
      const double solve = sq(n) * k / r_.gemm_f64_1t;  // B = V^T L^-1
      t.add("low rank: copies", copies + host);
      if (factor) t.add("low rank: whitening Cholesky (per spec)", fac);
      t.add("low rank: E L product", el);
      t.add("low rank: copies", solve);
      host += copies + fac + el + solve;
    } else {
      const double norm = 2 * m * n * n / r_.gemm_f64_1t;  // tr(E H E^T)
      t.add("low rank: copies", host + mn * 16 / r_.memory_1t);
      t.add("low rank: tr(E H E^T)", norm);
      host += mn * 16 / r_.memory_1t + norm;
    }
    // The eps of every rank: E^T A and H B^T.
    const double eps = (2 * n * m * k + 2 * sq(n) * k) / r_.gemm_f64_1t;
    t.add("low rank: eps of every rank", eps);
    host += eps;
    const Split v = svd(t, m, n, k);
    s.host = host + v.host;
    s.device = v.device;
    return s;
  }

  // X U = B for an m x n B with U upper triangular, m n^2 flops, at the rate
  // of the triangular inverse (both are blocked triangular level-3 work;
  // `bench_measure --floor` at 4096 x 4096: 43 GFLOP/s for the solve, against
  // the inverse's 38 in configs/rates/cpu.toml).
  double triangular_solve(double m, double n) const { return m * n * n / r_.trinv_f64_1t; }

  // tr(W H W^T) of one linear with the site's factor (Backend::weighted_sq_norm).
  Split weight_norm(StageTime& t, double m, double n) const {
    Split s;
    if (cuda_) {
      s.device = m * n * 4 / r_.gpu_host_copy + m * n * n / r_.gpu_gemm_f64 + 2 * r_.gpu_call_seconds;
    } else {
      s.host = triangular_solve(m, n);
    }
    t.add("measure: tr(W H W^T) (per linear)", s.total());
    return s;
  }

  // The top k eigenpairs of an n x n Gram matrix (lowrank/top_eigen.h). Eigen's
  // Householder tridiagonalization is unblocked, so memory-bound at n in the
  // thousands: each column streams the trailing lower triangle for a symmetric
  // product and a rank-2 update, about 0.4 n^3 doubles in all (`bench_measure
  // --floor` at n = 4096, k = 128: 9.8 s; this gives 10.2 s at 21.5 GB/s).
  // Below 384, or k > n/4, the full dense solver.
  double top_eigenpairs(double n, double k) const {
    if (n < 384 || 4 * k > n) return 9 * n * n * n / r_.eigensolver_f64_1t;
    return 0.4 * n * n * n * 8 / r_.memory_1t + 2 * n * n * k / r_.gemm_f64_1t;
  }

  // measure_site's work for one (linear, spec) against its site's shared factor
  // (lowrank/spec_errors.h, kernels/cuda_backend.cc), on the rows measured.
  Split measure_task(StageTime& t, double m, double n) const {
    const double s = static_cast<double>(
        measured_row_count(static_cast<int64_t>(m), in_.measure_rows, in_.measure_rows_min));
    Split out = quantize(t, s, n, false);
    const double sn = s * n;
    const double k = in_.lowrank == LowRankMethod::None ? 0 : std::min<double>(max_rank(), std::min(s, n));
    const double small = std::min(s, n), large = std::max(s, n);
    if (cuda_) {
      // E and X = E_p U^-1 on the device, then gram_svd and E_p U^T V; always exact.
      const double solve = s * n * n / r_.gpu_gemm_f64 + 4 * r_.gpu_call_seconds;
      t.add("measure: whitened error X = E U^-1 (device)", solve);
      out.device += solve;
      if (k > 0) {
        const double gram = large * sq(small) / r_.gpu_gemm_f64;
        const double eig = 9 * small * small * small / r_.gpu_syevd_f64;
        const double proj = (2 * large * small * k + sq(n) * k * 2 + 2 * sn * k) / r_.gpu_gemm_f64 +
                            ((s + n) * k * 8 * 2) / r_.gpu_host_copy + 6 * r_.gpu_call_seconds;
        t.add("low rank: Gram matrix", gram);
        t.add("low rank: eigensolver", eig);
        t.add("low rank: projections", proj);
        out.device += gram + eig + proj;
      }
      return out;
    }
    // E_p in fp64 from the codes: once, and once more per row tile for E_p B with low rank.
    const double errors = sn * (1 + 4 + 8) * (k > 0 ? 2 : 1) / r_.memory_1t;
    t.add("measure: error E from the codes", errors);
    out.host += errors;
    if (in_.measure_errors == ErrorMode::Approximate && !in_.rtn) {
      if (k > 0) {
        // Randomized block Krylov on GPTQ's float32 scaled errors (spec_errors.cc):
        // b = k + 16 columns, depth = power steps + 1 blocks.
        const double b = std::min(k + 16, small);
        const double depth = std::min(3.0, std::max(1.0, std::floor(small / b)));
        const double d = b * depth;
        const double krylov = (2 * sn * b + (depth - 1) * 4 * sn * b + 2 * sn * d + 2 * (s + n) * d * k) /
                              r_.gemm_f32_1t;
        const double qr = (depth * 4 * s * b * b + 4 * s * d * d + 2 * n * d * d) / r_.gemm_f64_1t +
                          9 * d * d * d / r_.eigensolver_f64_1t;
        const double proj = (sq(n) * k + 2 * sn * k) / r_.gemm_f64_1t;
        t.add("low rank: randomized Krylov (float)", krylov);
        t.add("low rank: orthogonalization and small SVD", qr);
        t.add("low rank: projections", proj);
        out.host += krylov + qr + proj;
      }
      return out;
    }
    const double solve = triangular_solve(s, n);
    t.add("measure: whitened error X = E U^-1 (fp64 solve)", solve);
    out.host += solve;
    if (k > 0) {
      const double gram = large * sq(small) / r_.gemm_f64_1t;
      const double top = top_eigenpairs(small, k);
      const double proj = (2 * sn * k + sq(n) * k + 2 * sn * k) / r_.gemm_f64_1t;  // X^T U_k, U^T V, E_p B
      t.add("low rank: Gram matrix", gram);
      t.add("low rank: top eigenpairs", top);
      t.add("low rank: projections", proj);
      out.host += gram + top + proj;
    }
    return out;
  }

  // pack_linear_choice at the chosen candidate (charged at pack_rank).
  Split pack_task(StageTime& t, double m, double n) const {
    const double mn = m * n;
    double read = mn * (in_.resources.weight_bytes + 4) / r_.memory_1t;
    t.add("pack: read weights", read);
    Split s = quantize(t, m, n, true);
    s.host += read;
    const double k = std::min<double>(pack_rank_, std::min(m, n));
    if (k > 0) {
      const Split d = decompose(t, m, n, k, true);
      s.host += d.host + mn * 5 / r_.memory_1t;
      s.device += d.device;
    }
    // pack_linear, then eps of what is stored: dequantize (+ A B) and two tr(. H .^T).
    const double stored = mn * 20 / r_.memory_1t + 2 * m * n * k / r_.gemm_f32_1t + 4 * m * n * n / r_.gemm_f64_1t;
    t.add("pack: packing and the stored eps", stored);
    s.host += stored;
    return s;
  }

  // Tasks on W workers: host parts in parallel, device parts one at a time.
  double schedule(const std::vector<Split>& tasks, int workers) const {
    if (tasks.empty()) return 0;
    workers = std::max(1, std::min<int>(workers, static_cast<int>(tasks.size())));
    double host = 0, device = 0, longest = 0;
    for (const auto& s : tasks) {
      host += s.host;
      device += s.device;
      longest = std::max(longest, s.total());
    }
    return std::max({longest, host / workers, device});
  }

  int max_rank() const {
    int k = 0;
    for (int r : in_.ranks) k = std::max(k, r);
    return in_.lowrank == LowRankMethod::None ? 0 : k;
  }

  double packed_bytes(double m, double n) const { return m * n * in_.resources.output_bpw / 8; }

  const std::vector<LinearSpec>& linears() const { return linears_; }
  double layer_params() const { return layer_params_; }
  double disk_write() const { return disk_write_; }
  // One site factor (Backend::factor_site): the permuted, damped copies of H,
  // its Cholesky factor and the triangular inverse.
  double site_factor(double n) const {
    if (cuda_)
      return sq(n) * 8 * 2 / r_.gpu_host_copy + (4.0 / 3.0) * n * n * n / r_.gpu_potrf_f64 + 4 * r_.gpu_call_seconds;
    return sq(n) * 8 * 4 / r_.memory_1t + n * n * n / 3 / r_.cholesky_f64_1t + n * n * n / 3 / r_.trinv_f64_1t;
  }
  double memory_1t() const { return r_.memory_1t; }
  double network() const { return r_.network; }
  double h() const { return h_; }

 private:
  const ModelConfig& c_;
  const TimeInputs& in_;
  const OpRates& r_;
  bool cuda_;
  std::vector<LinearSpec> linears_;
  double gemm_all_ = 0, memory_all_ = 0, disk_write_ = 0, disk_read_ = 0;
  double h_ = 0, q_ = 0, kv_ = 0, f_ = 0, seqlen_ = 0, layer_params_ = 0;
  int pack_rank_ = 0;
};

// What one rank spends, by pass (before the pipeline puts the ranks together).
struct RankWork {
  double pass0 = 0;         // FP forward feeding the next stage (measure pass; pack pass with none)
  double measure_walk = 0;  // the measure pass's layer walk
  double pack_pass0 = 0;    // the pack pass's FP forward feeding the next stage (--sequential none)
  double pack_walk = 0;     // the pack pass's layer walk
  double write = 0;         // the final file (after the pack pass)
  int layers = 0;
};

}  // namespace

void StageTime::add(const std::string& name, double s) {
  seconds += s;
  for (auto& t : terms)
    if (t.name == name) {
      t.seconds += s;
      return;
    }
  terms.push_back({name, s});
}

void StageTime::sort_terms() {
  std::stable_sort(terms.begin(), terms.end(), [](const TimeTerm& a, const TimeTerm& b) { return a.seconds > b.seconds; });
}

JobTime predict_times(const ModelConfig& config, const TimeInputs& in, const OpRates& rates) {
  if (!rates.has_host())
    AMLQ_FAIL(Usage, "the rates ({}) lack host rates: give a complete file (amlq plan --measure-rates writes one)",
              rates.sources.empty() ? std::string("none given") : fmt::format("{}", fmt::join(rates.sources, ", ")));
  if (in.device == ComputeDevice::Cuda && !rates.has_device())
    AMLQ_FAIL(Usage, "--backend cuda needs device rates (gpu_* keys, configs/rates/cuda.toml); {} lack them",
              fmt::format("{}", fmt::join(rates.sources, ", ")));
  const ResourceInputs& res = in.resources;
  const Model model(config, in, rates);
  const auto& linears = model.linears();
  AMLQ_ASSERT(in.specs_per_linear.size() == linears.size(), "{} spec counts for {} linears", in.specs_per_linear.size(),
              linears.size());
  const Topology layout = make_topology(config, 0, res.world_size, res.replicas, res.layers_per_rank);
  const int share = res.replicas == 1 ? res.samples : res.samples / res.replicas;
  const int per_layer = static_cast<int>(linears.size());
  const SequentialMode mode = res.sequential;

  JobTime job;
  std::vector<RankWork> work(static_cast<size_t>(res.world_size));
  for (int rank = 0; rank < res.world_size; ++rank) {
    const Topology topo = topology_of_rank(layout, rank);
    const LayerBlock mine = topo.my_layers();
    const int first_sample = topo.replica * share;
    RankTime rt;
    rt.rank = rank;
    rt.stage = topo.stage;
    rt.replica = topo.replica;
    RankWork& w = work[static_cast<size_t>(rank)];
    w.layers = mine.size();
    const bool feeds_next = !topo.last_stage();

    // ---- measure pass --------------------------------------------------
    for (int layer = mine.first; layer < mine.end; ++layer) {
      if (feeds_next) {
        w.pass0 += model.load_layer(rt.calibrate, true);
        w.pass0 += model.forward(rt.calibrate, share);
      }
      double walk = model.load_layer(rt.calibrate, !feeds_next) + model.forward(rt.calibrate, share);
      for (InputSite site : kSites) {
        walk += model.statistics(rt.calibrate, site, share, first_sample);
        walk += model.merge(rt.calibrate, site, share, first_sample);
      }
      for (InputSite site : kSites) {
        std::vector<Model::Split> tasks, norms;
        double serial = 0;
        const double n = model.site_dim(site);
        for (int j = 0; j < per_layer; ++j) {
          const LinearSpec& l = linears[static_cast<size_t>(j)];
          if (l.input != site) continue;
          if (owner_replica((layer - mine.first) * per_layer + j, res.replicas) != topo.replica) continue;
          // Once per linear: its weights, and tr(W H W^T) (on the workers, after the factor).
          const double read = static_cast<double>(l.rows) * l.cols * (res.weight_bytes + 4) / model.memory_1t();
          rt.measure.add("measure: read weights (per linear)", read);
          serial += read;
          norms.push_back(model.weight_norm(rt.measure, l.rows, l.cols));
          for (int spec = 0; spec < in.specs_per_linear[static_cast<size_t>(j)]; ++spec)
            tasks.push_back(model.measure_task(rt.measure, l.rows, l.cols));
        }
        if (tasks.empty()) continue;
        // The damped Hessian factored once per column order, shared by every spec of the site.
        {
          const double orders = std::max(1, res.column_orders);
          const double fac = orders * model.site_factor(n);
          rt.measure.add("measure: Hessian factorization (per site)", fac);
          serial += fac;
        }
        // The tasks' own seconds went into rt.measure as they were costed; the
        // stage total is the schedules' wall time, not their sum.
        double sum = 0;
        for (const auto& t : tasks) sum += t.total();
        for (const auto& t : norms) sum += t.total();
        const double wall = model.schedule(norms, res.threads) + model.schedule(tasks, res.threads);
        rt.measure.seconds += wall - sum;
        walk += serial + wall;
      }
      w.measure_walk += walk;
    }

    // ---- pack pass -----------------------------------------------------
    // Plans packed in each walk: all of them from the FP statistics (pack_pass's targets), else one.
    const int plans_per_walk = mode == SequentialMode::None ? std::max(1, res.pack_plans) : 1;
    for (int layer = mine.first; layer < mine.end; ++layer) {
      double walk = model.load_layer(rt.pack, false);
      auto pack_site = [&](InputSite site) {
        std::vector<Model::Split> tasks;
        double packed = 0;
        for (int j = 0; j < per_layer; ++j) {
          const LinearSpec& l = linears[static_cast<size_t>(j)];
          if (l.input != site) continue;
          packed += model.packed_bytes(l.rows, l.cols) * plans_per_walk;
          if (owner_replica((layer - mine.first) * per_layer + j, res.replicas) != topo.replica) continue;
          // Every plan's linear, as if no two plans chose alike (an upper bound).
          for (int p = 0; p < plans_per_walk; ++p) tasks.push_back(model.pack_task(rt.pack, l.rows, l.cols));
        }
        double sum = 0;
        for (const auto& t : tasks) sum += t.total();
        const double wall = model.schedule(tasks, res.threads);
        rt.pack.seconds += wall - sum;
        double exchange = 0;
        if (res.replicas > 1) {
          exchange = packed * (res.replicas - 1) / res.replicas / model.network();
          rt.pack.add("pack: exchange packed linears across replicas", exchange);
        }
        return wall + exchange;
      };
      if (mode == SequentialMode::True) {
        int k = 0;
        for (InputSite site : kSites) {
          walk += model.forward(rt.pack, share, k++);
          walk += model.statistics(rt.pack, site, share, first_sample) + model.merge(rt.pack, site, share, first_sample);
          walk += pack_site(site);
        }
        walk += model.forward(rt.pack, share);  // through the packed layer
      } else {
        walk += model.forward(rt.pack, share);
        for (InputSite site : kSites)
          walk += model.statistics(rt.pack, site, share, first_sample) + model.merge(rt.pack, site, share, first_sample);
        for (InputSite site : kSites) walk += pack_site(site);
        if (mode == SequentialMode::Layer) walk += model.forward(rt.pack, share);
      }
      if (mode != SequentialMode::None) {
        // replace_with_packed: every linear dequantized to dense float32.
        const double dq = model.layer_params() * 9 / model.memory_1t();
        rt.pack.add("pack: packed layer back to float32 (sequential)", dq);
        walk += dq;
      }
      if (topo.replica == 0) {
        double bytes = 0;
        for (const auto& l : linears) bytes += model.packed_bytes(l.rows, l.cols);
        const double s = bytes * plans_per_walk / model.disk_write();
        rt.write.add("write: per-layer pack checkpoint", s);
        walk += s;
      }
      w.pack_walk += walk;
    }
    if (mode == SequentialMode::None && feeds_next)  // the pack pass repeats pass 0 (pages now cached)
      for (int layer = mine.first; layer < mine.end; ++layer)
        w.pack_pass0 += model.load_layer(rt.pack, false) + model.forward(rt.pack, share);
    if (res.pack_plans > 1 && mode != SequentialMode::None) {
      // Validation (--validate-windows) with sequential statistics: a walk per
      // plan. (With none, one walk packs every plan: pack_site above.) The
      // forward of the held-out windows is small next to it and not charged.
      const double plans = res.pack_plans;
      w.pack_walk *= plans;
      rt.pack.seconds *= plans;
      for (auto& t : rt.pack.terms) t.seconds *= plans;
    }

    // ---- the final file: this rank's linears and passthrough tensors ------
    {
      double bytes = 0;
      for (int layer = mine.first; layer < mine.end; ++layer)
        for (int j = 0; j < per_layer; ++j)
          if (owner_replica((layer - mine.first) * per_layer + j, res.replicas) == topo.replica)
            bytes += model.packed_bytes(linears[static_cast<size_t>(j)].rows, linears[static_cast<size_t>(j)].cols);
      double pass = 0;
      if (topo.replica == 0) {
        if (topo.first_stage()) pass += static_cast<double>(config.vocab_size) * model.h() * res.weight_bytes;
        if (topo.last_stage() && !config.tie_word_embeddings) pass += static_cast<double>(config.vocab_size) * model.h() * res.weight_bytes;
      }
      const double s = (bytes + pass) / model.disk_write() + bytes / model.memory_1t();
      rt.write.add("write: output file (this rank's part)", s);
      w.write += s;
    }
    rt.calibrate.sort_terms();
    rt.measure.sort_terms();
    rt.pack.sort_terms();
    rt.write.sort_terms();
    job.ranks.push_back(std::move(rt));
  }

  // ---- the pipeline: stages in order, the slowest replica of each ------------
  const int stages = layout.stages;
  auto stage_max = [&](auto field) {
    std::vector<double> out(static_cast<size_t>(stages), 0.0);
    for (int rank = 0; rank < res.world_size; ++rank) {
      const int s = rank % stages;
      out[static_cast<size_t>(s)] = std::max(out[static_cast<size_t>(s)], field(work[static_cast<size_t>(rank)]));
    }
    return out;
  };
  const auto pass0 = stage_max([](const RankWork& w) { return w.pass0; });
  const auto measure_walk = stage_max([](const RankWork& w) { return w.measure_walk; });
  const auto pack_pass0 = stage_max([](const RankWork& w) { return w.pack_pass0; });
  const auto pack_walk = stage_max([](const RankWork& w) { return w.pack_walk; });
  const auto write = stage_max([](const RankWork& w) { return w.write; });
  std::vector<int> layers(static_cast<size_t>(stages));
  for (int s = 0; s < stages; ++s) layers[static_cast<size_t>(s)] = layout.stage_layers[static_cast<size_t>(s)].size();

  // Measure pass: stage s runs pass 0 on micro-batches as stage s-1's last layer
  // sends them (one layer of overlap), then its walk; the last stage starts its
  // walk once every input arrived.
  auto pipelined = [&](const std::vector<double>& p0, const std::vector<double>& walk) {
    double end0_prev = 0, finish = 0;
    for (int s = 0; s < stages; ++s) {
      const size_t i = static_cast<size_t>(s);
      double walk_start = 0;
      if (s == 0) {
        end0_prev = p0[i];
        walk_start = p0[i];
      } else if (s < stages - 1) {
        const double overlap = p0[i - 1] / std::max(1, layers[i - 1]);
        const double end0 = std::max(end0_prev - overlap + p0[i], end0_prev + p0[i] / std::max(1, layers[i]));
        end0_prev = end0;
        walk_start = end0;
      } else {
        walk_start = end0_prev;
      }
      finish = std::max(finish, walk_start + walk[i]);
    }
    return finish;
  };
  job.measure_pass = pipelined(pass0, measure_walk);
  // Search: rank 0 over every candidate (a sort and a bisection; minsum's DP over the budget grid).
  {
    double candidates = 0;
    int ranks_measured = 0;
    for (int k : in.ranks) ranks_measured += (k == 0 || in.lowrank != LowRankMethod::None) ? 1 : 0;
    for (int spec : in.specs_per_linear) candidates += static_cast<double>(spec) * ranks_measured;
    candidates *= config.num_layers;
    const double per = in.search.starts_with("minsum") ? 2e-6 : 2e-7;
    job.search = candidates * per * std::max(1.0, std::log2(std::max(2.0, candidates)));
  }
  if (mode == SequentialMode::None) {
    job.pack_pass = pipelined(pack_pass0, pack_walk);
  } else {
    // Sequential: stage s starts once stage s-1 quantized all its layers.
    for (int s = 0; s < stages; ++s) job.pack_pass += pack_walk[static_cast<size_t>(s)];
  }
  for (double w : write) job.write = std::max(job.write, w);
  job.total = job.measure_pass + job.search + job.pack_pass + job.write;
  for (auto& rt : job.ranks) rt.wait = std::max(0.0, job.total - rt.busy());
  return job;
}

std::string format_seconds(double seconds) {
  if (!(seconds >= 0) || !std::isfinite(seconds)) return "?";
  if (seconds < 10) return fmt::format("{:.1f} s", seconds);
  if (seconds < 120) return fmt::format("{:.0f} s", seconds);
  if (seconds < 7200) return fmt::format("{:.0f} min", seconds / 60);
  if (seconds < 172800) return fmt::format("{:.1f} h", seconds / 3600);
  return fmt::format("{:.1f} d", seconds / 86400);
}

}  // namespace amlq
