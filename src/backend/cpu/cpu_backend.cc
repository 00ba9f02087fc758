#include "backend/backend.h"
#include "backend/cpu/cpu_ops.h"

namespace amlq {
namespace {

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  bool supports(BackendOp) const override { return true; }

  void accumulate_hessian(const MatrixF& x, MatrixD& h, VectorD& abs_sum) override {
    cpu::accumulate_hessian(x, h, abs_sum);
  }
  QuantizedMatrix quantize(const MatrixF& w, const MatrixD& h, const QuantSpec& spec,
                           const GptqOptions& options) override {
    return cpu::quantize(w, h, spec, options);
  }
  std::unique_ptr<SiteFactor> factor_site(const MatrixD& h, bool act_order, const GptqOptions& options,
                                          bool factorize) override {
    return std::make_unique<cpu::CpuSiteFactor>(gptq_factor(h, act_order, options, factorize));
  }
  QuantizedMatrix quantize(const MatrixF& w, const SiteFactor& factor, const QuantSpec& spec,
                           const GptqOptions& options) override {
    return gptq_quantize(w, cpu::host_factor(factor), spec, options);
  }
  double weighted_sq_norm(const MatrixF& w, const SiteFactor& factor) override {
    return amlq::weighted_sq_norm(w, cpu::host_factor(factor));
  }
  SpecErrors measure_spec(const MatrixF& w, const SiteFactor& factor, const QuantSpec& spec,
                          const GptqOptions& options, const SpecErrorOptions& request,
                          QuantizedMatrix* quantized) override {
    return measure_spec_errors(w, cpu::host_factor(factor), spec, options, request, quantized);
  }
  SvdResult svd(const MatrixD& m, int rank) override { return cpu::svd(m, rank); }
  void linear(const MatrixF& x, const MatrixF& w, const VectorF& bias, MatrixF& y) override {
    cpu::linear(x, w, bias, y);
  }
  void dequant_linear(const MatrixF& x, const PackedLinear& layer, MatrixF& y) override {
    cpu::dequant_linear(x, layer, y);
  }
  void rms_norm(const MatrixF& x, const VectorF& weight, float eps, MatrixF& y) override {
    cpu::rms_norm(x, weight, eps, y);
  }
  void rope(MatrixF& x, int batch, int seqlen, int heads, int head_dim, const MatrixF& cos,
            const MatrixF& sin) override {
    cpu::rope(x, batch, seqlen, heads, head_dim, cos, sin);
  }
  void attention(const MatrixF& q, const MatrixF& k, const MatrixF& v, int batch, int seqlen, int heads,
                 int kv_heads, int head_dim, MatrixF& out) override {
    cpu::attention(q, k, v, batch, seqlen, heads, kv_heads, head_dim, out);
  }
  void swiglu(const MatrixF& gate, const MatrixF& up, MatrixF& out) override { cpu::swiglu(gate, up, out); }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }
void bind_cpu_backend_device(int) {}

}  // namespace amlq
