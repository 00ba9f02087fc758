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
#include "kernels/device_select.h"
#include "kernels/forward_ops.h"
#include "kernels/gptq_ops.h"
#include "kernels/gptq_plan.h"
#include "kernels/linalg_ops.h"

namespace amlq {
namespace {

using cuda::DeviceBuffer;
using cuda::to_device;

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
  void download(const DeviceBuffer<float>& src, Eigen::Index rows, Eigen::Index cols, MatrixF& dst) {
    dst.resize(rows, cols);
    src.download(dst.data(), ctx_.stream());
    ctx_.synchronize();
  }

  cuda::CudaContext ctx_;
  cuda::GemvWorkspace gemv_workspace_;
};

QuantizedMatrix CudaBackend::quantize(const MatrixF& w, const MatrixD& h, const QuantSpec& spec,
                                      const GptqOptions& options) {
  const int m = static_cast<int>(w.rows());
  const int n = static_cast<int>(w.cols());
  check_quantize_inputs(w, h, spec, options);
  const bool feedback = options.error_feedback;
  const bool have_h = h.size() > 0;
  cudaStream_t stream = ctx_.stream();

  // Without a Hessian (RTN only) there is no act-order and no dead column.
  std::vector<double> diag(n, 1.0);
  if (have_h)
    for (int i = 0; i < n; ++i) diag[i] = h(i, i);
  const cuda::ColumnPrep prep = cuda::prepare_columns(diag, spec.act_order && have_h);
  const auto plan = cuda::resolve_parts(spec.part_columns(n), spec, n);
  const auto blocks = cuda::plan_blocks(plan, options.block_size, spec.static_groups);

  QuantizedMatrix out;
  out.rows = m;
  out.cols = n;
  out.spec = spec;
  out.perm = prep.perm;
  out.dead_columns = prep.dead_count;

  DeviceBuffer<int32_t> d_perm;
  if (!prep.perm.empty()) d_perm = to_device(prep.perm.data(), prep.perm.size(), stream);
  const int32_t* perm = prep.perm.empty() ? nullptr : d_perm.data();
  auto d_dead = to_device(prep.dead.data(), prep.dead.size(), stream);
  auto d_w_orig = to_device(w.data(), w.size(), stream);
  DeviceBuffer<float> d_w(w.size());
  cuda::gather_weight_columns(ctx_, d_w_orig.data(), d_w.data(), m, n, perm, d_dead.data());

  std::vector<DeviceBuffer<uint16_t>> d_scales;
  std::vector<DeviceBuffer<uint8_t>> d_zeros;
  std::vector<cuda::GptqDevicePart> parts;
  for (const auto& p : plan) {
    d_scales.emplace_back(static_cast<size_t>(m) * p.num_groups);
    d_zeros.emplace_back(static_cast<size_t>(m) * p.num_groups);
    parts.push_back({p.col_begin, p.col_end, p.bits, p.group, p.num_groups, d_scales.back().data(),
                     d_zeros.back().data()});
  }
  if (spec.static_groups)
    cuda::static_group_params(ctx_, d_w_orig.data(), m, n, d_dead.data(), parts[0], spec.symmetric);

  DeviceBuffer<float> d_u;
  double damp_abs = 0;
  if (feedback) {
    d_u = DeviceBuffer<float>(static_cast<size_t>(n) * n);
    auto d_h = to_device(h.data(), h.size(), stream);
    DeviceBuffer<double> d_hp(static_cast<size_t>(n) * n);
    double lambda = options.damp;
    for (int attempt = 0;; ++attempt) {
      damp_abs = lambda * prep.mean_diag;
      cuda::prepare_hessian(ctx_, d_h.data(), d_hp.data(), n, perm, damp_abs);
      if (cuda::inverse_cholesky_upper(ctx_, d_hp.data(), n, d_u.data())) break;
      if (attempt >= options.max_damp_retries)
        AMLQ_FAIL(Numerical, "Cholesky of the damped Hessian [{} x {}] failed even with damp {:g}", n, n, lambda);
      AMLQ_LOG_WARN("Cholesky of the Hessian [{} x {}] failed with damp {:g}; retrying with {:g}", n, n, lambda,
                    lambda * 10);
      lambda *= 10;
      ++out.damp_escalations;
    }
    out.damp_used = lambda;
  }

  DeviceBuffer<uint8_t> d_codes(static_cast<size_t>(m) * n);
  DeviceBuffer<double> d_scaled_err(1);
  d_scaled_err.zero(stream);
  cuda::run_gptq_blocks(ctx_, d_w.data(), m, n, feedback ? d_u.data() : nullptr, blocks, parts, spec.symmetric,
                        spec.static_groups, perm, d_codes.data(), d_scaled_err.data());

  out.codes.resize(d_codes.size());
  d_codes.download(out.codes.data(), stream);
  for (size_t p = 0; p < plan.size(); ++p) {
    QuantizedMatrix::Part part;
    part.col_begin = plan[p].col_begin;
    part.col_end = plan[p].col_end;
    part.bits = plan[p].bits;
    part.group = plan[p].group;
    part.num_groups = plan[p].num_groups;
    part.scales.resize(d_scales[p].size());
    part.zeros.resize(d_zeros[p].size());
    d_scales[p].download(part.scales.data(), stream);
    d_zeros[p].download(part.zeros.data(), stream);
    out.parts.push_back(std::move(part));
  }
  if (feedback) {
    // tr(E H_d E^T) = ||Err||^2 (E = Err U); removing the dampening term leaves
    // the error under the undamped Hessian, as the CPU oracle reports it.
    double scaled = 0;
    d_scaled_err.download(&scaled, stream);
    const double e_sq = cuda::reconstruction_error_sq(ctx_, d_w_orig.data(), m, n, perm, d_dead.data(),
                                                      d_codes.data(), parts, spec.static_groups);
    out.output_error = std::max(0.0, scaled - damp_abs * e_sq);
  }
  ctx_.synchronize();
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
