#pragma once
// The one interface every compute backend implements. The CPU (Eigen) backend
// is the reference oracle; the CUDA backend (kernels/) must match it within the
// tolerances its parity tests state. Which backends exist is decided by CMake
// (src/backend/backend_list.cc.in); algorithm code only sees this interface.
#include <memory>
#include <string>
#include <vector>

#include "core/matrix.h"
#include "lowrank/lowrank_types.h"
#include "lowrank/spec_errors.h"
#include "quant/gptq.h"
#include "quant/packed_linear.h"
#include "quant/quant_spec.h"

namespace amlq {

enum class BackendOp {
  HessianAccumulate,
  Quantize,     // GPTQ and RTN
  Svd,
  Linear,       // dense y = x W^T
  DequantLinear,  // y = x dequant(Q)^T + (x B^T) A^T from a PackedLinear
  Forward,      // rms_norm, rope, attention, swiglu
};

// One input site's column order and damped-Hessian factor (quant/gptq.h), in
// whatever memory the backend computes in. Made once per site (q/k/v share
// one, gate/up another) and shared read-only by every spec and every linear
// that reads the site, from any number of threads.
class SiteFactor {
 public:
  virtual ~SiteFactor() = default;
  virtual const SiteFactorInfo& info() const = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual bool supports(BackendOp op) const = 0;
  // Peak device memory this backend allocated so far (0 for host-only backends).
  virtual int64_t peak_device_bytes() const { return 0; }

  // h += x^T x and abs_sum += column sums of |x| (x: tokens x n). The product of
  // one call may be formed in fp32 (METHOD.md 1: fp32 within a block); it is
  // added to h in fp64. Results must not depend on the number of threads.
  // The caller scales by 2/N (METHOD.md 1) once all tokens are in.
  virtual void accumulate_hessian(const MatrixF& x, MatrixD& h, VectorD& abs_sum) = 0;

  // GPTQ of w (m x n) under Hessian h (n x n), or RTN when !options.error_feedback.
  // h is taken unmodified: dampening and dead columns are handled inside.
  virtual QuantizedMatrix quantize(const MatrixF& w, const MatrixD& h, const QuantSpec& spec,
                                   const GptqOptions& options) = 0;

  // The factor of one site's undamped Hessian h for the column order act_order
  // asks for; factorize = false gives the order only (enough for RTN's
  // quantize, not for measure_spec). Dampening escalation happens (and is
  // logged) here, once per site.
  virtual std::unique_ptr<SiteFactor> factor_site(const MatrixD& h, bool act_order, const GptqOptions& options,
                                                  bool factorize = true) = 0;
  // quantize() with a precomputed factor: the same result as quantize(w, h, spec, options)
  // for the h the factor was made from. spec.act_order must match the factor's order.
  virtual QuantizedMatrix quantize(const MatrixF& w, const SiteFactor& factor, const QuantSpec& spec,
                                   const GptqOptions& options) = 0;
  // tr(W H W^T) from the factor (lowrank/spec_errors.h).
  virtual double weighted_sq_norm(const MatrixF& w, const SiteFactor& factor) = 0;
  // Quantizes w with spec and returns the output error of every requested rank
  // of whitened low-rank correction (lowrank/spec_errors.h); the factor must be
  // factored. quantized (optional) receives the quantized matrix.
  virtual SpecErrors measure_spec(const MatrixF& w, const SiteFactor& factor, const QuantSpec& spec,
                                  const GptqOptions& options, const SpecErrorOptions& request,
                                  QuantizedMatrix* quantized = nullptr) = 0;

  // Top-`rank` singular triplets of m plus its squared Frobenius norm.
  virtual SvdResult svd(const MatrixD& m, int rank) = 0;

  // y = x w^T (+ bias when non-empty). x: tokens x n, w: m x n, y: tokens x m.
  virtual void linear(const MatrixF& x, const MatrixF& w, const VectorF& bias, MatrixF& y) = 0;
  // Same product with packed weights and the low-rank side path.
  virtual void dequant_linear(const MatrixF& x, const PackedLinear& layer, MatrixF& y) = 0;

  // Forward-pass pieces. Activations hold `batch` sequences of `seqlen` tokens
  // as consecutive rows (row = b * seqlen + t).
  virtual void rms_norm(const MatrixF& x, const VectorF& weight, float eps, MatrixF& y) = 0;
  // Rotates q or k in place (rows: tokens; cols: heads * head_dim), HF rotate_half
  // convention; cos/sin: seqlen x head_dim/2 for positions 0..seqlen-1.
  virtual void rope(MatrixF& x, int batch, int seqlen, int heads, int head_dim, const MatrixF& cos,
                    const MatrixF& sin) = 0;
  // Causal grouped-query attention. q: tokens x heads*head_dim, k/v: tokens x kv_heads*head_dim.
  virtual void attention(const MatrixF& q, const MatrixF& k, const MatrixF& v, int batch, int seqlen, int heads,
                         int kv_heads, int head_dim, MatrixF& out) = 0;
  // out = silu(gate) * up, element-wise.
  virtual void swiglu(const MatrixF& gate, const MatrixF& up, MatrixF& out) = 0;
};

// Registry (generated from the backends CMake built).
std::vector<std::string> available_backends();
// "cpu", "cuda" or "auto" (cuda when built and a device is present, else cpu).
std::unique_ptr<Backend> make_backend(const std::string& name);
// Gives each built backend its device for this rank (the CUDA backend takes GPU
// node_local_rank % count); call before make_backend. Backends without devices ignore it.
void bind_backend_devices(int node_local_rank);

}  // namespace amlq
