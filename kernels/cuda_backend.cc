// The CUDA backend: host Eigen matrices in, host matrices out; every method
// copies its operands to the device, runs the kernels/ entry points on the
// backend's stream and copies the results back. Compiled by the host compiler:
// the device code lives in the *_kernels.cu files.
#include <cmath>
#include <memory>

#include "backend/backend.h"
#include "quant/gptq.h"
#include "core/error.h"
#include "core/log.h"
#include "kernels/cuda_check.h"
#include "kernels/cuda_context.h"
#include "kernels/dequant_ops.h"
#include "kernels/device_buffer.h"
#include "kernels/dense_kernels.h"
#include "kernels/device_select.h"
#include "kernels/gptq_kernels.h"
#include "kernels/forward_ops.h"
#include "kernels/gptq_ops.h"
#include "kernels/gptq_plan.h"
#include "kernels/linalg_ops.h"

namespace amlq {
namespace {

using cuda::DeviceBuffer;
using cuda::to_device;

class CudaSiteFactor;
struct CudaPass;

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) : ctx_(device) {}

  std::string name() const override { return "cuda"; }
  bool supports(BackendOp) const override { return true; }

  void accumulate_hessian(const MatrixF& x, MatrixD& h, VectorD& abs_sum) override {
    const int n = static_cast<int>(x.cols());
    if (h.size() == 0) h = MatrixD::Zero(n, n);
    if (abs_sum.size() == 0) abs_sum = VectorD::Zero(n);
    AMLQ_ASSERT(h.rows() == n && h.cols() == n && abs_sum.size() == n,
                "Hessian [{} x {}] / abs_sum {} for {} features", h.rows(), h.cols(), abs_sum.size(), n);
    auto dx = to_device(x.data(), x.size(), ctx_.stream());
    auto dh = to_device(h.data(), h.size(), ctx_.stream());
    auto ds = to_device(abs_sum.data(), abs_sum.size(), ctx_.stream());
    cuda::accumulate_hessian(ctx_, dx.data(), x.rows(), n, dh.data(), ds.data());
    dh.download(h.data(), ctx_.stream());
    ds.download(abs_sum.data(), ctx_.stream());
    ctx_.synchronize();
  }

  QuantizedMatrix quantize(const MatrixF& w, const MatrixD& h, const QuantSpec& spec,
                           const GptqOptions& options) override;
  std::unique_ptr<SiteFactor> factor_site(const MatrixD& h, bool act_order, const GptqOptions& options,
                                          bool factorize) override;
  QuantizedMatrix quantize(const MatrixF& w, const SiteFactor& factor, const QuantSpec& spec,
                           const GptqOptions& options) override;
  double weighted_sq_norm(const MatrixF& w, const SiteFactor& factor) override;
  SpecErrors measure_spec(const MatrixF& w, const SiteFactor& factor, const QuantSpec& spec,
                          const GptqOptions& options, const SpecErrorOptions& request,
                          QuantizedMatrix* quantized) override;

  SvdResult svd(const MatrixD& m, int rank) override {
    const int rows = static_cast<int>(m.rows()), cols = static_cast<int>(m.cols());
    AMLQ_ASSERT(rank >= 0, "svd rank {}", rank);
    const int k = std::min(rank, std::min(rows, cols));
    SvdResult out;
    out.frobenius_sq = m.squaredNorm();
    out.u = MatrixD::Zero(rows, k);
    out.v = MatrixD::Zero(cols, k);
    out.s = VectorD::Zero(k);
    if (k == 0) return out;
    auto dm = to_device(m.data(), m.size(), ctx_.stream());
    const cuda::GramSvd r = cuda::gram_svd(ctx_, dm.data(), rows, cols, k);
    out.u = Eigen::Map<const MatrixD>(r.u.data(), rows, k);
    out.v = Eigen::Map<const MatrixD>(r.v.data(), cols, k);
    out.s = Eigen::Map<const VectorD>(r.s.data(), k);
    return out;
  }

  void linear(const MatrixF& x, const MatrixF& w, const VectorF& bias, MatrixF& y) override {
    AMLQ_ASSERT(x.cols() == w.cols(), "linear: input has {} features, weight takes {}", x.cols(), w.cols());
    AMLQ_ASSERT(bias.size() == 0 || bias.size() == w.rows(), "linear: bias has {} entries for {} rows", bias.size(),
                w.rows());
    const int tokens = static_cast<int>(x.rows()), n = static_cast<int>(x.cols()), m = static_cast<int>(w.rows());
    auto dx = to_device(x.data(), x.size(), ctx_.stream());
    auto dw = to_device(w.data(), w.size(), ctx_.stream());
    auto db = to_device(bias.data(), bias.size(), ctx_.stream());
    DeviceBuffer<float> dy(static_cast<size_t>(tokens) * m);
    cuda::linear(ctx_, dx.data(), tokens, n, dw.data(), m, bias.size() ? db.data() : nullptr, dy.data());
    download(dy, tokens, m, y);
  }

  void dequant_linear(const MatrixF& x, const PackedLinear& layer, MatrixF& y) override {
    AMLQ_ASSERT(x.cols() == layer.cols, "input has {} features, layer '{}' takes {}", x.cols(), layer.name,
                layer.cols);
    const int tokens = static_cast<int>(x.rows());
    const auto dl = cuda::DevicePackedLayer::upload(layer, ctx_.stream());
    auto dx = to_device(x.data(), x.size(), ctx_.stream());
    DeviceBuffer<float> dy(static_cast<size_t>(tokens) * layer.rows);
    if (cuda::fused_gemv_applies(dl.view(), tokens)) {
      cuda::dequant_gemv(ctx_, dl.view(), dx.data(), tokens, dy.data(), gemv_workspace_);
    } else {
      cuda::dequant_matmul(ctx_, dl.view(), dx.data(), tokens, dy.data());
    }
    download(dy, tokens, layer.rows, y);
  }

  void rms_norm(const MatrixF& x, const VectorF& weight, float eps, MatrixF& y) override {
    AMLQ_ASSERT(weight.size() == x.cols(), "rms_norm: weight has {} entries for {} features", weight.size(),
                x.cols());
    auto dx = to_device(x.data(), x.size(), ctx_.stream());
    auto dw = to_device(weight.data(), weight.size(), ctx_.stream());
    DeviceBuffer<float> dy(x.size());
    cuda::rms_norm(ctx_, dx.data(), dw.data(), eps, static_cast<int>(x.rows()), static_cast<int>(x.cols()),
                   dy.data());
    download(dy, x.rows(), x.cols(), y);
  }

  void rope(MatrixF& x, int batch, int seqlen, int heads, int head_dim, const MatrixF& cos,
            const MatrixF& sin) override {
    AMLQ_ASSERT(x.rows() == static_cast<Eigen::Index>(batch) * seqlen && x.cols() == heads * head_dim,
                "rope: activations [{} x {}] for {} x {} tokens and {} heads of {}", x.rows(), x.cols(), batch, seqlen,
                heads, head_dim);
    AMLQ_ASSERT(cos.rows() >= seqlen && cos.cols() == head_dim / 2 && sin.rows() == cos.rows() &&
                    sin.cols() == cos.cols(),
                "rope: cos/sin tables [{} x {}] for seqlen {} and head_dim {}", cos.rows(), cos.cols(), seqlen,
                head_dim);
    auto dx = to_device(x.data(), x.size(), ctx_.stream());
    auto dc = to_device(cos.data(), cos.size(), ctx_.stream());
    auto ds = to_device(sin.data(), sin.size(), ctx_.stream());
    cuda::rope(ctx_, dx.data(), static_cast<int>(x.rows()), seqlen, heads, head_dim, dc.data(), ds.data());
    dx.download(x.data(), ctx_.stream());
    ctx_.synchronize();
  }

  void attention(const MatrixF& q, const MatrixF& k, const MatrixF& v, int batch, int seqlen, int heads, int kv_heads,
                 int head_dim, MatrixF& out) override {
    const Eigen::Index tokens = static_cast<Eigen::Index>(batch) * seqlen;
    AMLQ_ASSERT(q.rows() == tokens && k.rows() == tokens && v.rows() == tokens && q.cols() == heads * head_dim &&
                    k.cols() == kv_heads * head_dim && v.cols() == k.cols(),
                "attention: q [{} x {}], k [{} x {}], v [{} x {}] for {} tokens, {}/{} heads of {}", q.rows(),
                q.cols(), k.rows(), k.cols(), v.rows(), v.cols(), tokens, heads, kv_heads, head_dim);
    auto dq = to_device(q.data(), q.size(), ctx_.stream());
    auto dk = to_device(k.data(), k.size(), ctx_.stream());
    auto dv = to_device(v.data(), v.size(), ctx_.stream());
    DeviceBuffer<float> dout(q.size());
    cuda::attention(ctx_, dq.data(), dk.data(), dv.data(), batch, seqlen, heads, kv_heads, head_dim, dout.data());
    download(dout, q.rows(), q.cols(), out);
  }

  void swiglu(const MatrixF& gate, const MatrixF& up, MatrixF& out) override {
    AMLQ_ASSERT(gate.rows() == up.rows() && gate.cols() == up.cols(), "swiglu: gate [{} x {}] vs up [{} x {}]",
                gate.rows(), gate.cols(), up.rows(), up.cols());
    auto dg = to_device(gate.data(), gate.size(), ctx_.stream());
    auto du = to_device(up.data(), up.size(), ctx_.stream());
    DeviceBuffer<float> dout(gate.size());
    cuda::swiglu(ctx_, dg.data(), du.data(), gate.size(), dout.data());
    download(dout, gate.rows(), gate.cols(), out);
  }

 private:
  CudaPass run_pass(const MatrixF& w, const SiteFactor& factor, const QuantSpec& spec, const GptqOptions& options);
  void solve_whitened(const CudaSiteFactor& factor, double* y, int m, int n);
  void download(const DeviceBuffer<float>& src, Eigen::Index rows, Eigen::Index cols, MatrixF& dst) {
    dst.resize(rows, cols);
    src.download(dst.data(), ctx_.stream());
    ctx_.synchronize();
  }

  cuda::CudaContext ctx_;
  cuda::GemvWorkspace gemv_workspace_;
};

// The CUDA backend's SiteFactor: the column order on host and device, and U
// (fp64, for the exact error solve and the low-rank factor) with its fp32 copy
// (the GPTQ pass): 12 n^2 bytes of device memory per site and order.
class CudaSiteFactor final : public SiteFactor {
 public:
  const SiteFactorInfo& info() const override { return info_; }

  SiteFactorInfo info_;
  DeviceBuffer<int32_t> perm;  // empty: identity
  DeviceBuffer<uint8_t> dead;
  DeviceBuffer<double> u;      // empty unless factored
  DeviceBuffer<float> u_float;

  const int32_t* perm_ptr() const { return perm.size() ? perm.data() : nullptr; }
};

const CudaSiteFactor& cuda_factor(const SiteFactor& factor) {
  const auto* f = dynamic_cast<const CudaSiteFactor*>(&factor);
  AMLQ_ASSERT(f != nullptr, "a site factor from another backend was given to the CUDA backend");
  return *f;
}

std::unique_ptr<SiteFactor> CudaBackend::factor_site(const MatrixD& h, bool act_order, const GptqOptions& options,
                                                     bool factorize) {
  const int n = static_cast<int>(h.rows());
  AMLQ_ASSERT(h.size() > 0 && h.cols() == n, "a factor needs a square Hessian, got [{} x {}]", h.rows(), h.cols());
  AMLQ_REQUIRE(h.allFinite(), "Hessian [{} x {}] contains NaN or inf", n, n);
  cudaStream_t stream = ctx_.stream();
  std::vector<double> diag(n);
  for (int i = 0; i < n; ++i) diag[i] = h(i, i);
  const cuda::ColumnPrep prep = cuda::prepare_columns(diag, act_order);
  auto f = std::make_unique<CudaSiteFactor>();
  GptqColumns& c = f->info_.columns;
  c.cols = n;
  c.has_hessian = true;
  c.act_order = act_order;
  c.perm = prep.perm;
  c.dead = prep.dead;
  c.dead_count = prep.dead_count;
  c.mean_diag = prep.mean_diag;
  if (!prep.perm.empty()) f->perm = to_device(prep.perm.data(), prep.perm.size(), stream);
  f->dead = to_device(prep.dead.data(), prep.dead.size(), stream);
  if (!factorize) return f;

  auto d_h = to_device(h.data(), h.size(), stream);
  f->u = DeviceBuffer<double>(static_cast<size_t>(n) * n);
  double lambda = options.damp;
  for (int attempt = 0;; ++attempt) {
    f->info_.damp_abs = lambda * prep.mean_diag;
    cuda::prepare_hessian(ctx_, d_h.data(), f->u.data(), n, f->perm_ptr(), f->info_.damp_abs);
    if (cuda::inverse_cholesky_upper(ctx_, f->u.data(), n)) break;
    if (attempt >= options.max_damp_retries)
      AMLQ_FAIL(Numerical, "Cholesky of the damped Hessian [{} x {}] failed even with damp {:g}", n, n, lambda);
    AMLQ_LOG_WARN("Cholesky of the Hessian [{} x {}] failed with damp {:g}; retrying with {:g}", n, n, lambda,
                  lambda * 10);
    lambda *= 10;
    ++f->info_.damp_escalations;
  }
  f->info_.damp_used = lambda;
  f->info_.factored = true;
  f->u_float = DeviceBuffer<float>(static_cast<size_t>(n) * n);
  cuda::upper_to_float(ctx_, f->u.data(), n, f->u_float.data());
  ctx_.synchronize();
  return f;
}

// One GPTQ/RTN pass on the device with a site factor; the device state stays
// available for the error measurement.
struct CudaPass {
  QuantizedMatrix out;
  DeviceBuffer<float> w_orig;  // m x n, original order
  DeviceBuffer<uint8_t> codes;
  std::vector<DeviceBuffer<uint16_t>> scales;
  std::vector<DeviceBuffer<uint8_t>> zeros;
  std::vector<cuda::GptqDevicePart> parts;
  double scaled_err_sq = 0;
};

CudaPass CudaBackend::run_pass(const MatrixF& w, const SiteFactor& factor_base, const QuantSpec& spec,
                               const GptqOptions& options) {
  const CudaSiteFactor& factor = cuda_factor(factor_base);
  const GptqColumns& columns = factor.info_.columns;
  const int m = static_cast<int>(w.rows());
  const int n = static_cast<int>(w.cols());
  spec.validate(m, n, "matrix");
  AMLQ_ASSERT(columns.cols == n, "factor of {} columns for a weight with {}", columns.cols, n);
  AMLQ_ASSERT(columns.act_order == (spec.act_order && columns.has_hessian),
              "factor ordered {}act-order for spec {}", columns.act_order ? "" : "without ", spec.label());
  const bool feedback = options.error_feedback;
  AMLQ_ASSERT(!feedback || factor.info_.factored, "GPTQ needs a factored Hessian");
  AMLQ_REQUIRE(w.allFinite(), "weight matrix [{} x {}] contains NaN or inf", m, n);
  cudaStream_t stream = ctx_.stream();

  const auto plan = cuda::resolve_parts(spec.part_columns(n), spec, n);
  const auto blocks = cuda::plan_blocks(plan, options.block_size);

  CudaPass pass;
  QuantizedMatrix& out = pass.out;
  out.rows = m;
  out.cols = n;
  out.spec = spec;
  out.perm = columns.perm;
  out.dead_columns = columns.dead_count;
  if (feedback) {
    out.damp_used = factor.info_.damp_used;
    out.damp_escalations = factor.info_.damp_escalations;
  }

  const int32_t* perm = factor.perm_ptr();
  const uint8_t* dead = factor.dead.size() ? factor.dead.data() : nullptr;
  pass.w_orig = to_device(w.data(), w.size(), stream);
  DeviceBuffer<float> d_w(w.size());
  cuda::gather_weight_columns(ctx_, pass.w_orig.data(), d_w.data(), m, n, perm, dead);

  for (const auto& p : plan) {
    pass.scales.emplace_back(static_cast<size_t>(m) * p.num_groups);
    pass.zeros.emplace_back(static_cast<size_t>(m) * p.num_groups);
    pass.parts.push_back({p.col_begin, p.col_end, p.bits, p.group, p.num_groups, pass.scales.back().data(),
                          pass.zeros.back().data()});
  }
  if (spec.static_groups)
    cuda::static_group_params(ctx_, pass.w_orig.data(), m, n, dead, pass.parts[0], spec.symmetric);

  pass.codes = DeviceBuffer<uint8_t>(static_cast<size_t>(m) * n);
  DeviceBuffer<double> d_scaled_err(1);
  d_scaled_err.zero(stream);
  cuda::run_gptq_blocks(ctx_, d_w.data(), m, n, feedback ? factor.u_float.data() : nullptr, blocks, pass.parts,
                        spec.symmetric, spec.static_groups, perm, pass.codes.data(), d_scaled_err.data());

  out.codes.resize(pass.codes.size());
  pass.codes.download(out.codes.data(), stream);
  for (size_t p = 0; p < plan.size(); ++p) {
    QuantizedMatrix::Part part;
    part.col_begin = plan[p].col_begin;
    part.col_end = plan[p].col_end;
    part.bits = plan[p].bits;
    part.group = plan[p].group;
    part.num_groups = plan[p].num_groups;
    part.scales.resize(pass.scales[p].size());
    part.zeros.resize(pass.zeros[p].size());
    pass.scales[p].download(part.scales.data(), stream);
    pass.zeros[p].download(part.zeros.data(), stream);
    out.parts.push_back(std::move(part));
  }
  if (feedback) {
    // tr(E H_d E^T) = ||Err||^2 (E = Err U); removing the dampening term leaves
    // the error under the undamped Hessian, as the CPU oracle reports it.
    d_scaled_err.download(&pass.scaled_err_sq, stream);
    const double e_sq = cuda::reconstruction_error_sq(ctx_, pass.w_orig.data(), m, n, perm, dead, pass.codes.data(),
                                                      pass.parts, spec.static_groups);
    out.output_error = std::max(0.0, pass.scaled_err_sq - factor.info_.damp_abs * e_sq);
  }
  ctx_.synchronize();
  return pass;
}

QuantizedMatrix CudaBackend::quantize(const MatrixF& w, const MatrixD& h, const QuantSpec& spec,
                                      const GptqOptions& options) {
  check_quantize_inputs(w, h, spec, options);
  if (h.size() == 0) {
    // RTN without statistics: identity order, nothing dead.
    CudaSiteFactor plain;
    plain.info_.columns = gptq_columns(h, static_cast<int>(w.cols()), false);
    return run_pass(w, plain, spec, options).out;
  }
  const auto factor = factor_site(h, spec.act_order, options, options.error_feedback);
  return run_pass(w, *factor, spec, options).out;
}

QuantizedMatrix CudaBackend::quantize(const MatrixF& w, const SiteFactor& factor, const QuantSpec& spec,
                                      const GptqOptions& options) {
  return run_pass(w, factor, spec, options).out;
}

double CudaBackend::weighted_sq_norm(const MatrixF& w, const SiteFactor& factor_base) {
  const CudaSiteFactor& factor = cuda_factor(factor_base);
  const int m = static_cast<int>(w.rows()), n = static_cast<int>(w.cols());
  AMLQ_ASSERT(factor.info_.factored && factor.info_.columns.cols == n,
              "factor of {} columns ({}factored) for a weight with {}", factor.info_.columns.cols,
              factor.info_.factored ? "" : "not ", n);
  cudaStream_t stream = ctx_.stream();
  auto d_w = to_device(w.data(), w.size(), stream);
  DeviceBuffer<float> d_wp(w.size());
  cuda::gather_weight_columns(ctx_, d_w.data(), d_wp.data(), m, n, factor.perm_ptr(),
                              factor.dead.size() ? factor.dead.data() : nullptr);
  DeviceBuffer<double> y(w.size()), acc(2);
  acc.zero(stream);
  AMLQ_CHECK_CUDA(cuda::launch_sum_squares(d_wp.data(), static_cast<int64_t>(w.size()), acc.data() + 1, stream));
  AMLQ_CHECK_CUDA(cuda::launch_float_to_double(d_wp.data(), y.data(), static_cast<int64_t>(w.size()), stream));
  solve_whitened(factor, y.data(), m, n);
  DeviceBuffer<double> rows(static_cast<size_t>(m));
  cuda::row_sq_norms(ctx_, y.data(), m, n, rows.data());
  std::vector<double> host_rows(static_cast<size_t>(m));
  double host_acc[2] = {0, 0};
  rows.download(host_rows.data(), stream);
  acc.download(host_acc, stream);
  ctx_.synchronize();
  double total = 0;
  for (double v : host_rows) total += v;
  return total - factor.info_.damp_abs * host_acc[1];
}

// y (m x n row-major, processing order) := y U^-1 in place.
void CudaBackend::solve_whitened(const CudaSiteFactor& factor, double* y, int m, int n) {
  // Row-major Y (m x n) is column-major Y^T; Y U = B <=> U^T Y^T = B^T, and the
  // row-major upper U read column-major is U^T: a lower-triangular left solve.
  const double one = 1.0;
  AMLQ_CHECK_CUBLAS(cublasDtrsm(ctx_.cublas(), CUBLAS_SIDE_LEFT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N,
                                CUBLAS_DIAG_NON_UNIT, n, m, &one, factor.u.data(), n, y, n));
}

SpecErrors CudaBackend::measure_spec(const MatrixF& w, const SiteFactor& factor_base, const QuantSpec& spec,
                                     const GptqOptions& options, const SpecErrorOptions& request,
                                     QuantizedMatrix* quantized) {
  // Always the exact errors (the fp64 solve), whatever request.mode says: on the
  // device it costs little next to the pass.
  const CudaSiteFactor& factor = cuda_factor(factor_base);
  AMLQ_ASSERT(factor.info_.factored, "measure_spec needs a factored site");
  const int s = static_cast<int>(w.rows()), n = static_cast<int>(w.cols());
  AMLQ_ASSERT(!request.ranks.empty(), "no ranks requested");
  cudaStream_t stream = ctx_.stream();
  CudaPass pass = run_pass(w, factor, spec, options);

  const size_t sn = static_cast<size_t>(s) * n;
  DeviceBuffer<double> e(sn), x(sn), e_rows(static_cast<size_t>(s)), x_rows(static_cast<size_t>(s));
  cuda::error_matrix(ctx_, pass.w_orig.data(), s, n, factor.perm_ptr(), factor.dead.size() ? factor.dead.data() : nullptr,
                     pass.codes.data(), pass.parts, spec.static_groups, e.data());
  cuda::row_sq_norms(ctx_, e.data(), s, n, e_rows.data());
  AMLQ_CHECK_CUDA(cudaMemcpyAsync(x.data(), e.data(), sn * sizeof(double), cudaMemcpyDeviceToDevice, stream));
  solve_whitened(factor, x.data(), s, n);
  cuda::row_sq_norms(ctx_, x.data(), s, n, x_rows.data());
  VectorD e_sq(s), x_sq(s);
  e_rows.download(e_sq.data(), stream);
  x_rows.download(x_sq.data(), stream);
  ctx_.synchronize();

  SpecErrors out;
  const int k = request.ranks.back();
  if (k == 0) {
    combine_whitened_errors(VectorD(), Eigen::MatrixXd(s, 0), Eigen::MatrixXd(s, 0), Eigen::MatrixXd(n, 0), x_sq,
                            e_sq, factor.info_.damp_abs, request, out);
  } else {
    const cuda::GramSvd svd = cuda::gram_svd(ctx_, x.data(), s, n, k);
    VectorD sigma = Eigen::Map<const VectorD>(svd.s.data(), k);
    const Eigen::MatrixXd left = Eigen::Map<const MatrixD>(svd.u.data(), s, k);
    const MatrixD right = Eigen::Map<const MatrixD>(svd.v.data(), n, k);  // row-major n x k = column-major V^T
    // bt = U^T V (n x k). Column-major: Bt^T (k x n) = V^T U, with V^T the
    // row-major right (ld k) and U = (column-major view of row-major U)^T.
    auto d_v = to_device(right.data(), right.size(), stream);
    DeviceBuffer<double> d_bt(static_cast<size_t>(n) * k), d_eb(static_cast<size_t>(s) * k);
    const double one = 1.0, zero = 0.0;
    AMLQ_CHECK_CUBLAS(cublasDgemm(ctx_.cublas(), CUBLAS_OP_N, CUBLAS_OP_T, k, n, n, &one, d_v.data(), k,
                                  factor.u.data(), n, &zero, d_bt.data(), k));
    // eb = E_p bt (s x k). Column-major: eb^T (k x s) = bt^T (k x n, ld k) E_p^T (n x s, ld n).
    AMLQ_CHECK_CUBLAS(cublasDgemm(ctx_.cublas(), CUBLAS_OP_N, CUBLAS_OP_N, k, s, n, &one, d_bt.data(), k, e.data(), n,
                                  &zero, d_eb.data(), k));
    MatrixD bt(n, k), eb(s, k);
    d_bt.download(bt.data(), stream);
    d_eb.download(eb.data(), stream);
    ctx_.synchronize();
    combine_whitened_errors(sigma, left, Eigen::MatrixXd(eb), Eigen::MatrixXd(bt), x_sq, e_sq, factor.info_.damp_abs,
                            request, out);
  }
  if (quantized) *quantized = std::move(pass.out);
  return out;
}

}  // namespace

std::unique_ptr<Backend> make_cuda_backend() {
  // No device (or no driver): "auto" falls back to the CPU backend.
  if (cuda::cuda_device_count() == 0) return nullptr;
  int device = 0;
  AMLQ_CHECK_CUDA(cudaGetDevice(&device));  // the device select_device_for_local_rank made current
  return std::make_unique<CudaBackend>(device);
}

}  // namespace amlq
