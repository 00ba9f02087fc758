#include "lowrank/decompose.h"

#include "core/error.h"
#include "core/log.h"
#include "lowrank/factor_rounding.h"
#include "quant/error.h"

namespace amlq {
namespace {

VectorD guarded_scale(const VectorD& s, Eigen::Index n) {
  AMLQ_REQUIRE(s.size() == n, "L2QER needs an activation scale of {} entries, got {}", n, s.size());
  double floor = std::numeric_limits<double>::infinity();
  for (Eigen::Index i = 0; i < n; ++i)
    if (std::isfinite(s[i]) && s[i] > 0) floor = std::min(floor, s[i]);
  if (!std::isfinite(floor)) floor = 1;
  VectorD out = s;
  for (Eigen::Index i = 0; i < n; ++i)
    if (!(std::isfinite(s[i]) && s[i] > 0)) out[i] = floor;
  return out;
}

}  // namespace

double LowRankDecomposition::eps_at(int k) const {
  AMLQ_ASSERT(k >= 0, "rank {}", k);
  if (k > max_rank()) {
    AMLQ_ASSERT(max_rank() == std::min(rows, cols), "rank {} requested from a decomposition of max rank {}", k,
                max_rank());
    k = max_rank();
  }
  return eps[k];
}

LowRankFactors LowRankDecomposition::factors(int k, FactorFormat format) const {
  AMLQ_ASSERT(k >= 0, "rank {}", k);
  if (k > max_rank()) {
    AMLQ_ASSERT(max_rank() == std::min(rows, cols), "rank {} requested from a decomposition of max rank {}", k,
                max_rank());
    k = max_rank();
  }
  return round_factors(a.leftCols(k).cast<float>(), b.topRows(k).cast<float>(), format);
}

LowRankDecomposition decompose_error(Backend& backend, const MatrixF& w, const MatrixF& w_hat, const MatrixD& h,
                                     const VectorD& act_scale, LowRankMethod method, int max_rank,
                                     const LowRankOptions& options) {
  const Eigen::Index m = w.rows(), n = w.cols();
  AMLQ_ASSERT(w_hat.rows() == m && w_hat.cols() == n && h.rows() == n && h.cols() == n,
              "W [{} x {}], W_hat [{} x {}], H [{} x {}]", m, n, w_hat.rows(), w_hat.cols(), h.rows(), h.cols());
  AMLQ_ASSERT(max_rank >= 0, "max rank {}", max_rank);
  LowRankDecomposition out;
  out.method = method;
  out.rows = static_cast<int>(m);
  out.cols = static_cast<int>(n);
  const int k = method == LowRankMethod::None ? 0 : static_cast<int>(std::min<Eigen::Index>(max_rank, std::min(m, n)));
  const MatrixD e = (w - w_hat).cast<double>();
  out.weight_norm_h = options.weight_norm_h >= 0 ? options.weight_norm_h : weighted_sq_norm(w, h);

  // M = E T with T = I (svd), S (l2qer) or L (whiten, H = L L^T); B = V^T T^-1.
  MatrixD m_mat;
  VectorD scale;
  Eigen::MatrixXd chol_l;
  double base = options.error_norm_h;
  if (k > 0 && method == LowRankMethod::Svd) {
    m_mat = e;
  } else if (k > 0 && method == LowRankMethod::L2qer) {
    scale = guarded_scale(act_scale, n);
    m_mat = e * scale.asDiagonal();
  } else if (k > 0 && method == LowRankMethod::Whiten) {
    Eigen::MatrixXd hd = h;
    double dead_sq = 0;
    for (Eigen::Index i = 0; i < n; ++i)
      if (hd(i, i) == 0) {
        hd(i, i) = 1;
        dead_sq += e.col(i).squaredNorm();
      }
    const double mean_diag = hd.diagonal().mean();
    double lambda = options.damp;
    for (int attempt = 0;; ++attempt) {
      Eigen::MatrixXd damped = hd;
      damped.diagonal().array() += lambda * mean_diag;
      Eigen::LLT<Eigen::MatrixXd> llt(damped);
      if (llt.info() == Eigen::Success && llt.matrixLLT().allFinite()) {
        chol_l = llt.matrixL();
        break;
      }
      if (attempt >= 3) AMLQ_FAIL(Numerical, "Cholesky of the damped Hessian [{} x {}] failed even with damp {:g}", n, n, lambda);
      AMLQ_LOG_WARN("whitening: Cholesky of the Hessian [{} x {}] failed with damp {:g}; retrying with {:g}", n, n,
                    lambda, lambda * 10);
      lambda *= 10;
    }
    out.damp_used = lambda;
    m_mat = e * chol_l.triangularView<Eigen::Lower>();
    // tr(E H E^T) from ||E L||^2 = tr(E H_d E^T), saving a second m n^2 product.
    if (base < 0) base = m_mat.squaredNorm() - lambda * mean_diag * e.squaredNorm() - dead_sq;
  }
  if (base < 0) base = weighted_sq_norm(e, h);
  out.error_norm_h = std::max(base, 0.0);

  out.a = MatrixD::Zero(m, k);
  out.b = MatrixD::Zero(k, n);
  out.eps.assign(1, normalize_error(out.error_norm_h, out.weight_norm_h));
  if (k == 0) return out;

  const SvdResult svd = backend.svd(m_mat, k);
  const VectorD root = svd.s.cwiseSqrt();
  out.a = svd.u * root.asDiagonal();
  MatrixD vt = root.asDiagonal() * svd.v.transpose();  // k x n
  if (method == LowRankMethod::L2qer) {
    vt = vt * scale.cwiseInverse().asDiagonal();
  } else if (method == LowRankMethod::Whiten) {
    // B = V^T L^-1  <=>  B^T = L^-T V: one triangular solve.
    const Eigen::MatrixXd bt = chol_l.transpose().triangularView<Eigen::Upper>().solve(Eigen::MatrixXd(vt.transpose()));
    vt = bt.transpose();
  }
  out.b = vt;

  // With orthogonal columns of A:
  //   tr(R_k H R_k^T) = tr(E H E^T) - 2 sum_{i<k} a_i^T E H b_i + sum_{i<k} |a_i|^2 b_i^T H b_i,
  // so all ranks cost one n x k and one m x k product.
  const MatrixD eta = e.transpose() * out.a;      // n x k: E^T a_i
  const MatrixD hb = h * out.b.transpose();        // n x k: H b_i
  double err = out.error_norm_h;
  for (int i = 0; i < k; ++i) {
    const double cross = eta.col(i).dot(hb.col(i));
    const double quad = out.a.col(i).squaredNorm() * out.b.row(i).dot(hb.col(i).transpose());
    err += quad - 2 * cross;
    out.eps.push_back(normalize_error(err, out.weight_norm_h));
  }
  return out;
}

double lowrank_eps(const MatrixF& w, const MatrixF& w_hat, const MatrixD& h, const LowRankFactors& factors,
                   double weight_norm_h) {
  MatrixF r = w - w_hat;
  if (factors.rank() > 0) r.noalias() -= factors.a * factors.b;
  const double reference = weight_norm_h >= 0 ? weight_norm_h : weighted_sq_norm(w, h);
  return normalize_error(weighted_sq_norm(r, h), reference);
}

}  // namespace amlq
