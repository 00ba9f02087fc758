#include "quant/error.h"

#include "core/error.h"

namespace amlq {
namespace {

// Rows at a time, so the m x n product never needs to be held in full.
constexpr Eigen::Index kRowChunk = 512;

}  // namespace

double weighted_sq_norm(const MatrixD& m, const MatrixD& h) {
  AMLQ_ASSERT(m.cols() == h.rows() && h.rows() == h.cols(), "[{} x {}] under a [{} x {}] Hessian", m.rows(), m.cols(),
              h.rows(), h.cols());
  double total = 0;
  for (Eigen::Index r = 0; r < m.rows(); r += kRowChunk) {
    const Eigen::Index rows = std::min(kRowChunk, m.rows() - r);
    const MatrixD mh = m.middleRows(r, rows) * h;
    total += mh.cwiseProduct(m.middleRows(r, rows)).sum();
  }
  return total;
}

double weighted_sq_norm(const MatrixF& m, const MatrixD& h) {
  AMLQ_ASSERT(m.cols() == h.rows() && h.rows() == h.cols(), "[{} x {}] under a [{} x {}] Hessian", m.rows(), m.cols(),
              h.rows(), h.cols());
  double total = 0;
  for (Eigen::Index r = 0; r < m.rows(); r += kRowChunk) {
    const Eigen::Index rows = std::min(kRowChunk, m.rows() - r);
    const MatrixD chunk = m.middleRows(r, rows).cast<double>();
    const MatrixD mh = chunk * h;
    total += mh.cwiseProduct(chunk).sum();
  }
  return total;
}

double normalize_error(double error, double reference) {
  // H is PSD, so both are >= 0 up to rounding. A layer whose output is
  // identically zero on the calibration set (W or H zero) cannot be hurt: 0.
  error = std::max(error, 0.0);
  if (!(reference > 0)) return 0.0;
  return error / reference;
}

double normalized_error(const MatrixF& w, const MatrixF& w_hat, const MatrixD& h) {
  AMLQ_ASSERT(w.rows() == w_hat.rows() && w.cols() == w_hat.cols(), "W [{} x {}] vs W_hat [{} x {}]", w.rows(),
              w.cols(), w_hat.rows(), w_hat.cols());
  const MatrixF e = w - w_hat;
  return normalize_error(weighted_sq_norm(e, h), weighted_sq_norm(w, h));
}

}  // namespace amlq
