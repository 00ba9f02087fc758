#include "lowrank/spec_errors.h"

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <random>

#include "core/error.h"
#include "lowrank/top_eigen.h"
#include "quant/quantizer.h"

namespace amlq {
namespace {

// Rows of W handled together where a whole s x n matrix is not needed.
constexpr int kRowTile = 256;

// Rows [r0, r0 + out.rows()) of E_p = W_p - W_hat_p (processing order, dead columns 0), in double.
void error_rows(const MatrixF& w, const QuantizedMatrix& q, const GptqColumns& columns, int r0,
                Eigen::Ref<MatrixD> out) {
  const int n = q.cols;
  for (const auto& part : q.parts) {
    for (Eigen::Index r = 0; r < out.rows(); ++r) {
      const int i = r0 + static_cast<int>(r);
      const uint8_t* codes = q.codes.data() + static_cast<size_t>(i) * n;
      const size_t param_row = static_cast<size_t>(i) * part.num_groups;
      for (int j = part.col_begin; j < part.col_end; ++j) {
        const int c = columns.original(j);
        if (columns.is_dead(c)) {
          out(r, j) = 0;
          continue;
        }
        const int g = group_of(part, j, c, q.spec.static_groups);
        const float w_hat =
            dequantize_value(codes[j], fp16_to_float(part.scales[param_row + g]), part.zeros[param_row + g]);
        // The difference in float, as dequantize-and-subtract has always
        // computed E (the errors then agree with tr(E H E^T) from H to ~1e-12).
        out(r, j) = static_cast<double>(w(i, c) - w_hat);
      }
    }
  }
}

}  // namespace

double weighted_sq_norm(const MatrixF& w, const GptqFactor& factor) {
  const int m = static_cast<int>(w.rows()), n = static_cast<int>(w.cols());
  AMLQ_ASSERT(factor.factored && factor.cols() == n, "factor of {} columns ({}factored) for a weight with {}",
              factor.cols(), factor.factored ? "" : "not ", n);
  const GptqColumns& columns = factor.columns;
  double total = 0, live_sq = 0;
  MatrixD tile;
  for (int i0 = 0; i0 < m; i0 += kRowTile) {
    const int rows = std::min(kRowTile, m - i0);
    tile.resize(rows, n);
    for (int r = 0; r < rows; ++r)
      for (int j = 0; j < n; ++j) {
        const int c = columns.original(j);
        tile(r, j) = columns.is_dead(c) ? 0.0 : static_cast<double>(w(i0 + r, c));
      }
    live_sq += tile.squaredNorm();
    // Y U = W_p: ||Y||^2 = tr(W_p H_d W_p^T).
    factor.u.triangularView<Eigen::Upper>().solveInPlace<Eigen::OnTheRight>(tile);
    total += tile.squaredNorm();
  }
  return total - factor.damp_abs * live_sq;
}

void combine_whitened_errors(const VectorD& sigma, const Eigen::MatrixXd& left, const Eigen::MatrixXd& eb,
                             const Eigen::MatrixXd& bt, const VectorD& x_sq, const VectorD& e_sq, double damp_abs,
                             const SpecErrorOptions& request, SpecErrors& out) {
  const Eigen::Index s = x_sq.size();
  const size_t nr = request.ranks.size();
  out.error.assign(nr, 0.0);
  if (request.per_row) out.per_row = MatrixD::Zero(s, static_cast<Eigen::Index>(nr));
  out.scaled_error_sq = x_sq.sum();
  const double e_total = e_sq.sum();
  const VectorD bt_sq = bt.colwise().squaredNorm().transpose();
  Eigen::MatrixXd bt_gram;
  if (request.per_row) bt_gram = bt.transpose() * bt;

  // Whitened tail sum minus the dampening term of what the correction leaves:
  //   ||R_k||^2 = ||E||^2 - 2 sum_l sigma_l u_l^T E bt_l + sum_l sigma_l^2 |bt_l|^2  (A's columns orthogonal).
  double captured = 0, cross = 0, quad = 0;
  int done = 0;
  for (size_t r = 0; r < nr; ++r) {
    const int kk = request.ranks[r];
    AMLQ_ASSERT(kk <= sigma.size(), "rank {} from {} singular triplets", kk, sigma.size());
    for (; done < kk; ++done) {
      const double sl = sigma[done];
      captured += sl * sl;
      cross += sl * left.col(done).dot(eb.col(done));
      quad += sl * sl * bt_sq[done];
    }
    out.error[r] = std::max(0.0, out.scaled_error_sq - captured - damp_abs * (e_total - 2 * cross + quad));
    if (!request.per_row) continue;
    // Row i: ||X_i||^2 - sum_l sigma_l^2 u_il^2 - lambda_abs ||E_i - sum_l a_il b_l||^2.
    Eigen::VectorXd z(kk);
    for (Eigen::Index i = 0; i < s; ++i) {
      double cap = 0, cr = 0;
      for (int l = 0; l < kk; ++l) {
        const double u = left(i, l);
        cap += sigma[l] * sigma[l] * u * u;
        cr += sigma[l] * u * eb(i, l);
        z[l] = sigma[l] * u;
      }
      const double quad_i = kk > 0 ? z.dot(bt_gram.topLeftCorner(kk, kk) * z) : 0.0;
      out.per_row(i, static_cast<Eigen::Index>(r)) = x_sq[i] - cap - damp_abs * (e_sq[i] - 2 * cr + quad_i);
    }
  }
}

namespace {

// The top k singular triplets of X (s x n) and what they need.
struct Triplets {
  VectorD sigma;          // k, descending; 0 for dropped triplets
  Eigen::MatrixXd left;   // s x k
  Eigen::MatrixXd right;  // n x k
};

// As cpu::svd: triplets with sigma <= 1e-10 sigma_max are zeros. `derived` is
// the side computed as (X or X^T) times the other and still unscaled.
void normalize_triplets(Triplets& t, bool left_derived) {
  Eigen::MatrixXd& derived = left_derived ? t.left : t.right;
  Eigen::MatrixXd& direct = left_derived ? t.right : t.left;
  const double floor = t.sigma.size() > 0 ? 1e-10 * t.sigma[0] : 0.0;
  for (Eigen::Index l = 0; l < t.sigma.size(); ++l) {
    if (t.sigma[l] > floor && t.sigma[l] > 0) {
      derived.col(l) /= t.sigma[l];
    } else {
      t.sigma[l] = 0;
      derived.col(l).setZero();
      direct.col(l).setZero();
    }
  }
}

// Exact: the Gram matrix of X's smaller side and its top k eigenpairs (dense accuracy).
Triplets exact_triplets(const MatrixD& x, int k) {
  const Eigen::Index s = x.rows(), n = x.cols();
  const bool row_gram = s <= n;
  const Eigen::Index small = std::min(s, n);
  Triplets t;
  {
    MatrixD gram = MatrixD::Zero(small, small);
    if (row_gram) {
      gram.selfadjointView<Eigen::Lower>().rankUpdate(x);
    } else {
      gram.selfadjointView<Eigen::Lower>().rankUpdate(x.transpose());
    }
    gram.triangularView<Eigen::StrictlyUpper>() = gram.transpose();
    TopEigen top = top_eigenpairs(gram, k);
    t.sigma = top.values.cwiseSqrt();
    (row_gram ? t.left : t.right) = std::move(top.vectors);
  }
  if (row_gram) {
    t.right = x.transpose() * t.left;
  } else {
    t.left = x * t.right;
  }
  normalize_triplets(t, !row_gram);
  return t;
}

// Approximate: randomized block Krylov on X given as xt = X^T (n x s, float32):
// K = [X W, (X X^T) X W, ..., (X X^T)^q X W] with a seeded Gaussian W of k + p
// columns, then the SVD of X projected on K (q = request.krylov_steps).
// ~(4 + 6q) s n (k + p) float flops.
constexpr int kOversample = 16;

Triplets approximate_triplets(const MatrixF& xt, int k, int steps) {
  const Eigen::Index n = xt.rows(), s = xt.cols();
  const Eigen::Index b = std::min<Eigen::Index>(k + kOversample, std::min(s, n));
  const Eigen::Index depth = std::min<Eigen::Index>(steps + 1, std::max<Eigen::Index>(1, std::min(s, n) / b));
  MatrixF omega(n, b);
  {
    std::mt19937_64 rng(777);
    std::normal_distribution<float> normal;
    for (Eigen::Index i = 0; i < omega.size(); ++i) omega.data()[i] = normal(rng);
  }
  // Krylov blocks, each orthonormalized (in double) before the next multiply.
  Eigen::MatrixXd basis(s, b * depth);
  MatrixF y = xt.transpose() * omega;  // s x b
  for (Eigen::Index step = 0; step < depth; ++step) {
    Eigen::MatrixXd block = y.cast<double>();
    if (step > 0) {
      const Eigen::MatrixXd c = basis.leftCols(step * b).transpose() * block;
      block.noalias() -= basis.leftCols(step * b) * c;
    }
    Eigen::HouseholderQR<Eigen::MatrixXd> qr(block);
    basis.middleCols(step * b, b) = qr.householderQ() * Eigen::MatrixXd::Identity(s, b);
    if (step + 1 < depth) {
      const MatrixF q = basis.middleCols(step * b, b).cast<float>();
      const MatrixF z = xt * q;  // n x b: X^T Q
      y = xt.transpose() * z;    // s x b: X X^T Q
    }
  }
  // Re-orthonormalize the whole basis (the blocks were made orthogonal one by one).
  {
    Eigen::HouseholderQR<Eigen::MatrixXd> qr(basis);
    basis = qr.householderQ() * Eigen::MatrixXd::Identity(s, basis.cols());
  }
  // X^T Q (n x d) and the small SVD through (Q^T X)(X^T Q) (d x d).
  const Eigen::MatrixXd xq = (xt * basis.cast<float>()).cast<double>();
  const Eigen::MatrixXd small = xq.transpose() * xq;
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(small);
  AMLQ_REQUIRE(eig.info() == Eigen::Success, "eigendecomposition of a [{} x {}] projected Gram matrix failed",
               small.rows(), small.cols());
  const Eigen::Index d = small.rows();
  const int kk = static_cast<int>(std::min<Eigen::Index>(k, d));
  Triplets t;
  t.sigma = VectorD::Zero(k);
  t.left = Eigen::MatrixXd::Zero(s, k);
  t.right = Eigen::MatrixXd::Zero(n, k);
  const Eigen::MatrixXd top = eig.eigenvectors().rightCols(kk).rowwise().reverse();
  t.sigma.head(kk) = eig.eigenvalues().tail(kk).reverse().cwiseMax(0.0).cwiseSqrt();
  t.left.leftCols(kk) = basis * top;
  t.right.leftCols(kk) = xq * top;
  normalize_triplets(t, false);
  return t;
}

}  // namespace

SpecErrors measure_spec_errors(const MatrixF& w, const GptqFactor& factor, const QuantSpec& spec,
                               const GptqOptions& options, const SpecErrorOptions& request,
                               QuantizedMatrix* quantized) {
  const int s = static_cast<int>(w.rows()), n = static_cast<int>(w.cols());
  AMLQ_ASSERT(factor.factored && factor.cols() == n, "factor of {} columns ({}factored) for a weight with {}",
              factor.cols(), factor.factored ? "" : "not ", n);
  AMLQ_ASSERT(!request.ranks.empty(), "no ranks requested");
  for (size_t r = 0; r < request.ranks.size(); ++r)
    AMLQ_ASSERT(request.ranks[r] >= 0 && request.ranks[r] <= std::min(s, n) &&
                    (r == 0 || request.ranks[r] > request.ranks[r - 1]),
                "ranks must ascend within [0, {}]", std::min(s, n));
  const bool approximate = request.mode == ErrorMode::Approximate && options.error_feedback;
  const GptqColumns& columns = factor.columns;
  const int k = request.ranks.back();

  // The whitened error X (s x n, processing order), per-row ||X_i||^2 and
  // ||E_i||^2, and the top k triplets of X.
  QuantizedMatrix q;
  VectorD x_sq(s), e_sq(s);
  Triplets triplets;
  if (approximate) {
    // X^T = GPTQ's scaled errors, straight from its working copy (float32).
    MatrixF err_t;
    q = gptq_quantize(w, factor, spec, options, &err_t);
    x_sq = err_t.cast<double>().colwise().squaredNorm().transpose();
    MatrixD tile;
    for (int i0 = 0; i0 < s; i0 += kRowTile) {
      tile.resize(std::min(kRowTile, s - i0), n);
      error_rows(w, q, columns, i0, tile);
      e_sq.segment(i0, tile.rows()) = tile.rowwise().squaredNorm();
    }
    if (k > 0) triplets = approximate_triplets(err_t, k, request.krylov_steps);
  } else {
    q = gptq_quantize(w, factor, spec, options);
    // Allocated after the pass: its working copy (4 s n) is gone by then.
    MatrixD x(s, n);
    error_rows(w, q, columns, 0, x);
    e_sq = x.rowwise().squaredNorm();
    // X U = E_p (E_p = Err U in exact arithmetic; here in double from the codes).
    factor.u.triangularView<Eigen::Upper>().solveInPlace<Eigen::OnTheRight>(x);
    x_sq = x.rowwise().squaredNorm();
    if (k > 0) triplets = exact_triplets(x, k);
  }

  SpecErrors out;
  if (k == 0) {
    combine_whitened_errors(VectorD(), Eigen::MatrixXd(s, 0), Eigen::MatrixXd(s, 0), Eigen::MatrixXd(n, 0), x_sq,
                            e_sq, factor.damp_abs, request, out);
  } else {
    // b_l = sigma_l^1/2 (U^T v_l): the correction in processing order; eb = E_p U^T V.
    const Eigen::MatrixXd bt = factor.u.transpose().triangularView<Eigen::Lower>() * triplets.right;  // n x k
    Eigen::MatrixXd eb(s, k);
    MatrixD tile;
    for (int i0 = 0; i0 < s; i0 += kRowTile) {
      tile.resize(std::min(kRowTile, s - i0), n);
      error_rows(w, q, columns, i0, tile);
      eb.middleRows(i0, tile.rows()).noalias() = tile * bt;
    }
    combine_whitened_errors(triplets.sigma, triplets.left, eb, bt, x_sq, e_sq, factor.damp_abs, request, out);
  }
  if (quantized) *quantized = std::move(q);
  return out;
}

}  // namespace amlq
