#include "lowrank/top_eigen.h"

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "core/error.h"

namespace amlq {
namespace {

// Below this size the full dense solver is as fast and simpler.
constexpr Eigen::Index kDenseBelow = 384;

TopEigen dense_top(const MatrixD& g, int k) {
  const Eigen::Index n = g.rows();
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(g);
  AMLQ_REQUIRE(eig.info() == Eigen::Success, "eigendecomposition of a [{} x {}] Gram matrix did not converge", n, n);
  TopEigen out;
  // Eigenvalues ascend: the top k are the last k.
  out.values = eig.eigenvalues().tail(k).reverse().cwiseMax(0.0);
  out.vectors = eig.eigenvectors().rightCols(k).rowwise().reverse();
  return out;
}

// Number of eigenvalues of the symmetric tridiagonal T (diagonal a, off-diagonal
// b) that are smaller than x: the negative pivots of T - x I = L D L^T (Sturm).
Eigen::Index count_below(const Eigen::VectorXd& a, const Eigen::VectorXd& b2, double x, double pivmin) {
  Eigen::Index count = 0;
  double q = a[0] - x;
  if (std::abs(q) < pivmin) q = -pivmin;
  if (q < 0) ++count;
  for (Eigen::Index i = 1; i < a.size(); ++i) {
    q = a[i] - x - b2[i - 1] / q;
    if (std::abs(q) < pivmin) q = -pivmin;
    if (q < 0) ++count;
  }
  return count;
}

// Solves (T - lambda I) x = rhs in place by Gaussian elimination with partial
// pivoting (LAPACK dgttrf/dgttrs); tiny pivots are replaced by `floor`, which is
// what inverse iteration wants (the shift is an eigenvalue).
struct ShiftedTridiagonal {
  Eigen::VectorXd d, du, du2, dl;
  std::vector<uint8_t> swapped;

  ShiftedTridiagonal(const Eigen::VectorXd& a, const Eigen::VectorXd& b, double lambda, double floor) {
    const Eigen::Index n = a.size();
    d = a.array() - lambda;
    du = b;
    dl = b;
    du2 = Eigen::VectorXd::Zero(std::max<Eigen::Index>(n - 2, 0));
    swapped.assign(static_cast<size_t>(std::max<Eigen::Index>(n - 1, 0)), 0);
    for (Eigen::Index i = 0; i + 1 < n; ++i) {
      if (std::abs(d[i]) >= std::abs(dl[i])) {
        if (std::abs(d[i]) < floor) d[i] = d[i] < 0 ? -floor : floor;
        const double l = dl[i] / d[i];
        dl[i] = l;
        d[i + 1] -= l * du[i];
      } else {
        const double l = d[i] / dl[i];
        d[i] = dl[i];
        dl[i] = l;
        const double t = du[i];
        du[i] = d[i + 1];
        d[i + 1] = t - l * d[i + 1];
        if (i + 2 < n) {
          du2[i] = du[i + 1];
          du[i + 1] = -l * du[i + 1];
        }
        swapped[static_cast<size_t>(i)] = 1;
      }
    }
    if (n > 0 && std::abs(d[n - 1]) < floor) d[n - 1] = d[n - 1] < 0 ? -floor : floor;
  }

  void solve(Eigen::VectorXd& x) const {
    const Eigen::Index n = d.size();
    for (Eigen::Index i = 0; i + 1 < n; ++i) {  // L
      if (swapped[static_cast<size_t>(i)]) std::swap(x[i], x[i + 1]);
      x[i + 1] -= dl[i] * x[i];
    }
    for (Eigen::Index i = n - 1; i >= 0; --i) {  // U (diagonal, two superdiagonals)
      double v = x[i];
      if (i + 1 < n) v -= du[i] * x[i + 1];
      if (i + 2 < n) v -= du2[i] * x[i + 2];
      x[i] = v / d[i];
    }
  }
};

// Top k eigenpairs of the tridiagonal T: eigenvalues by bisection, vectors by
// inverse iteration, orthogonalized within clusters (LAPACK dstebz + dstein).
void tridiagonal_top(const Eigen::VectorXd& a, const Eigen::VectorXd& b, int k, Eigen::VectorXd& values,
                     Eigen::MatrixXd& vectors) {
  const Eigen::Index n = a.size();
  const Eigen::VectorXd b2 = b.array().square();
  // Gershgorin interval and the scale of T.
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (Eigen::Index i = 0; i < n; ++i) {
    const double r = (i > 0 ? std::abs(b[i - 1]) : 0.0) + (i + 1 < n ? std::abs(b[i]) : 0.0);
    lo = std::min(lo, a[i] - r);
    hi = std::max(hi, a[i] + r);
  }
  const double norm = std::max(std::abs(lo), std::abs(hi));
  const double eps = std::numeric_limits<double>::epsilon();
  const double pivmin = std::max(std::numeric_limits<double>::min(), norm * eps * eps);
  const double width = norm > 0 ? norm : 1.0;
  lo -= 2 * eps * width + pivmin;
  hi += 2 * eps * width + pivmin;

  values.resize(k);
  for (int j = 0; j < k; ++j) {
    // The (n - j)-th smallest: count_below(x) <= n - 1 - j  <=>  x <= lambda.
    const Eigen::Index target = n - 1 - j;
    double l = lo, h = hi;
    for (int it = 0; it < 200 && h - l > 2 * eps * std::max(std::abs(l), std::abs(h)) + pivmin; ++it) {
      const double mid = 0.5 * (l + h);
      if (count_below(a, b2, mid, pivmin) <= target) {
        l = mid;
      } else {
        h = mid;
      }
    }
    values[j] = 0.5 * (l + h);
  }

  // Inverse iteration. Vectors whose eigenvalues lie within 1e-3 |T| of each
  // other are kept orthogonal by Gram-Schmidt in every iteration (dstein's rule).
  vectors.resize(n, k);
  const double cluster = 1e-3 * width;
  const double floor = eps * width;
  std::mt19937_64 rng(12345);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  int cluster_begin = 0;
  for (int j = 0; j < k; ++j) {
    if (j > 0 && values[j - 1] - values[j] > cluster) cluster_begin = j;
    // Shift nearly equal eigenvalues apart a little, as dstein does.
    double shift = values[j];
    if (j > cluster_begin && values[j - 1] - shift < 10 * floor) shift = values[j - 1] - 10 * floor;
    const ShiftedTridiagonal lu(a, b, shift, floor);
    Eigen::VectorXd x(n);
    for (Eigen::Index i = 0; i < n; ++i) x[i] = uniform(rng);
    // Converged once one solve grows a unit vector past sqrt(0.1/n) / (eps |T|);
    // then two more iterations (dstein's EXTRA), at most 5 before that.
    const double converged = std::sqrt(0.1 / static_cast<double>(n)) / floor;
    int extra = -1;
    for (int it = 0; it < 7; ++it) {
      for (int i = cluster_begin; i < j; ++i) x -= vectors.col(i).dot(x) * vectors.col(i);
      x /= x.norm();
      lu.solve(x);
      const double growth = x.lpNorm<Eigen::Infinity>();
      for (int i = cluster_begin; i < j; ++i) x -= vectors.col(i).dot(x) * vectors.col(i);
      x /= x.norm();
      if (extra < 0 && (growth >= converged || it >= 4)) extra = 0;
      if (extra >= 0 && ++extra > 2) break;
    }
    vectors.col(j) = x;
  }
}

}  // namespace

TopEigen top_eigenpairs(const MatrixD& g, int k) {
  const Eigen::Index n = g.rows();
  AMLQ_ASSERT(g.cols() == n, "top_eigenpairs of a [{} x {}] matrix", n, g.cols());
  AMLQ_ASSERT(k >= 0 && k <= n, "top {} eigenpairs of a {} x {} matrix", k, n, n);
  if (k == 0) {
    TopEigen out;
    out.values.resize(0);
    out.vectors.resize(n, 0);
    return out;
  }
  if (n < kDenseBelow || 4 * k > n) return dense_top(g, k);
  // Householder tridiagonalization Q^T G Q = T (the n^3 part), the top of T's
  // spectrum, and its vectors mapped back through Q.
  const Eigen::Tridiagonalization<Eigen::MatrixXd> tri(g);
  Eigen::MatrixXd z;
  TopEigen out;
  tridiagonal_top(tri.diagonal(), tri.subDiagonal(), k, out.values, z);
  out.vectors = tri.matrixQ() * z;
  out.values = out.values.cwiseMax(0.0);
  return out;
}

}  // namespace amlq
