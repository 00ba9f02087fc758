// CPU (Eigen) reference implementations of the quantization-side backend ops.
#include <Eigen/Eigenvalues>

#include "backend/cpu/cpu_ops.h"
#include "core/error.h"
#include "quant/gptq.h"
#include "quant/pack.h"

namespace amlq::cpu {

void accumulate_hessian(const MatrixF& x, MatrixD& h, VectorD& abs_sum) {
  const Eigen::Index n = x.cols();
  if (h.size() == 0) h = MatrixD::Zero(n, n);
  if (abs_sum.size() == 0) abs_sum = VectorD::Zero(n);
  AMLQ_ASSERT(h.rows() == n && h.cols() == n && abs_sum.size() == n,
              "Hessian [{} x {}] / abs_sum {} for {} features", h.rows(), h.cols(), abs_sum.size(), n);
  // X^T X of this chunk as fp32 GEMM tiles (fast; METHOD.md 1 allows fp32 within a
  // block), each added to h in fp64. Lower-triangle tiles; an off-diagonal tile
  // is also added transposed, so every entry of h receives exactly one addition.
  const Eigen::Index tokens = x.rows();
  const int nt = static_cast<int>((n + kHessianTile - 1) / kHessianTile);
  std::vector<std::pair<int, int>> tiles;
  for (int i = 0; i < nt; ++i)
    for (int j = 0; j <= i; ++j) tiles.emplace_back(i, j);
  const double flops = static_cast<double>(tokens) * static_cast<double>(n) * static_cast<double>(n);
  run_tiles(static_cast<int>(tiles.size()), flops, [&](int t) {
    const auto [bi, bj] = tiles[static_cast<size_t>(t)];
    const Eigen::Index i0 = bi * kHessianTile, ti = std::min(kHessianTile, n - i0);
    const Eigen::Index j0 = bj * kHessianTile, tj = std::min(kHessianTile, n - j0);
    thread_local Eigen::MatrixXf product;
    product.resize(ti, tj);
    product.noalias() = x.middleCols(i0, ti).transpose() * x.middleCols(j0, tj);
    // A GEMM need not sum (a, b) and (b, a) in the same order: keep H exactly symmetric.
    if (bi == bj) product.triangularView<Eigen::StrictlyUpper>() = product.transpose();
    h.block(i0, j0, ti, tj) += product.cast<double>();
    if (bi != bj) h.block(j0, i0, tj, ti) += product.transpose().cast<double>();
  });
  // Column sums of |x| in fp64, tokens in order.
  run_tiles(nt, static_cast<double>(tokens) * static_cast<double>(n), [&](int t) {
    const Eigen::Index c0 = t * kHessianTile, tc = std::min(kHessianTile, n - c0);
    for (Eigen::Index r = 0; r < tokens; ++r)
      abs_sum.segment(c0, tc) += x.row(r).segment(c0, tc).transpose().cwiseAbs().cast<double>();
  });
}

QuantizedMatrix quantize(const MatrixF& w, const MatrixD& h, const QuantSpec& spec, const GptqOptions& options) {
  return gptq_quantize(w, h, spec, options);
}

const GptqFactor& host_factor(const SiteFactor& factor) {
  const auto* cpu = dynamic_cast<const CpuSiteFactor*>(&factor);
  AMLQ_ASSERT(cpu != nullptr, "a site factor from another backend was given to the CPU backend");
  return cpu->factor;
}

// Top-k SVD through the eigendecomposition of the smaller Gram matrix
// (M^T M or M M^T): min(m,n)^3 work instead of BDCSVD's m n min(m,n) bidiagonal
// reduction, and the quantization errors we decompose are wide or tall. The top
// singular values (the only ones we use) keep full relative accuracy down to
// ~1e-8 * s_max; singular vectors of singular values below 1e-10 * s_max are
// set to zero (their triplets contribute nothing to U diag(S) V^T).
SvdResult svd(const MatrixD& m, int rank) {
  const Eigen::Index rows = m.rows(), cols = m.cols();
  const Eigen::Index small = std::min(rows, cols);
  AMLQ_ASSERT(rank >= 0, "svd rank {}", rank);
  const Eigen::Index k = std::min<Eigen::Index>(rank, small);
  SvdResult out;
  out.frobenius_sq = m.squaredNorm();
  out.u = MatrixD::Zero(rows, k);
  out.v = MatrixD::Zero(cols, k);
  out.s = VectorD::Zero(k);
  if (k == 0) return out;

  const bool tall = rows >= cols;  // Gram over the columns (n x n) when tall
  Eigen::MatrixXd gram = Eigen::MatrixXd::Zero(small, small);
  if (tall) {
    gram.selfadjointView<Eigen::Lower>().rankUpdate(m.transpose());
  } else {
    gram.selfadjointView<Eigen::Lower>().rankUpdate(m);
  }
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(gram);
  AMLQ_REQUIRE(eig.info() == Eigen::Success, "eigendecomposition of a [{} x {}] Gram matrix did not converge",
               small, small);
  // Eigenvalues ascend: the top k are the last k.
  const Eigen::MatrixXd vecs = eig.eigenvectors().rightCols(k).rowwise().reverse();
  const Eigen::VectorXd vals = eig.eigenvalues().tail(k).reverse();
  const double s_max = std::sqrt(std::max(vals[0], 0.0));
  for (Eigen::Index i = 0; i < k; ++i) out.s[i] = std::sqrt(std::max(vals[i], 0.0));
  MatrixD& known = tall ? out.v : out.u;  // the side the eigenvectors give directly
  MatrixD& other = tall ? out.u : out.v;
  known = vecs;
  other = tall ? MatrixD(m * vecs) : MatrixD(m.transpose() * vecs);
  for (Eigen::Index i = 0; i < k; ++i) {
    if (out.s[i] > 1e-10 * s_max && out.s[i] > 0) {
      other.col(i) /= out.s[i];
    } else {
      other.col(i).setZero();
      known.col(i).setZero();
      out.s[i] = 0;
    }
  }
  return out;
}

void dequant_linear(const MatrixF& x, const PackedLinear& layer, MatrixF& y) {
  AMLQ_ASSERT(x.cols() == layer.cols, "input has {} features, layer '{}' takes {}", x.cols(), layer.name, layer.cols);
  const MatrixF w_hat = dequantize(layer, false);
  y.noalias() = x * w_hat.transpose();
  if (layer.rank > 0) {
    const LowRankFactors f = unpack_factors(layer);
    const MatrixF xb = x * f.b.transpose();
    y.noalias() += xb * f.a.transpose();
  }
  if (!layer.bias.empty()) {
    AMLQ_ASSERT(static_cast<int>(layer.bias.size()) == layer.rows, "bias has {} entries for {} rows",
                layer.bias.size(), layer.rows);
    y.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(layer.bias.data(), layer.rows);
  }
}

}  // namespace amlq::cpu
