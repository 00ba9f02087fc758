#include "quant/gptq.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "core/error.h"
#include "core/log.h"
#include "quant/quantizer.h"

namespace amlq {
namespace {

// Rows of W handled together inside a block: the block's columns of this many
// rows (block 128 x 256 floats = 128 KiB) stay in L2 during the in-block updates.
constexpr int kRowTile = 256;

struct Block {
  int begin, end;
};

// Blocks never straddle a group boundary and every group starts a block, so the
// group parameters, computed when a group is entered, see weights that have
// received every earlier column's update (exactly as the unbatched OBQ loop).
// Groups start every g columns from the part's start, so a shorter last group
// (g not dividing the width) ends with the part and needs no special case.
std::vector<Block> make_blocks(const QuantizedMatrix& q, int block_size, bool static_groups) {
  std::vector<Block> blocks;
  for (const auto& part : q.parts) {
    const int g = part.group;
    const int step = static_groups ? block_size : (g <= block_size ? (block_size / g) * g : block_size);
    for (int c = part.col_begin; c < part.col_end;) {
      int end = std::min(c + step, part.col_end);
      if (!static_groups && g > block_size) end = std::min(end, part.col_begin + ((c - part.col_begin) / g + 1) * g);
      blocks.push_back({c, end});
      c = end;
    }
  }
  return blocks;
}

}  // namespace

namespace {

// In-place inverse of a lower-triangular matrix by halves:
// [A 0; B C]^-1 = [A^-1 0; -C^-1 B A^-1  C^-1]. Two triangular products per
// level give n^3/3 flops, a third of solving against the identity.
void invert_lower_in_place(Eigen::Ref<MatrixD> l) {
  const Eigen::Index n = l.rows();
  if (n <= 128) {
    const MatrixD inv = l.triangularView<Eigen::Lower>().solve(MatrixD::Identity(n, n));
    l = inv;
    return;
  }
  const Eigen::Index n1 = (n / 2 + 63) / 64 * 64, n2 = n - n1;
  invert_lower_in_place(l.topLeftCorner(n1, n1));
  invert_lower_in_place(l.bottomRightCorner(n2, n2));
  const MatrixD b_ainv = l.bottomLeftCorner(n2, n1) * l.topLeftCorner(n1, n1).triangularView<Eigen::Lower>();
  l.bottomLeftCorner(n2, n1).noalias() = -(l.bottomRightCorner(n2, n2).triangularView<Eigen::Lower>() * b_ainv);
  l.topRightCorner(n1, n2).setZero();
}

// Cholesky of `reversed` = J h J (row-major, overwritten) and U = J L^-1 J.
// Because J M J of a row-major matrix is its flat array reversed, U is
// written by one sequential pass. Returns false when h is not positive definite.
template <typename Out>
bool inverse_cholesky_upper_reversed(MatrixD& reversed, Out& u) {
  const Eigen::Index n = reversed.rows();
  Eigen::LLT<Eigen::Ref<MatrixD>> llt(reversed);
  if (llt.info() != Eigen::Success) return false;
  invert_lower_in_place(reversed);  // reads only the lower triangle, zeroes the upper
  u.resize(n, n);
  const double* src = reversed.data();
  auto* dst = u.data();
  const Eigen::Index total = n * n;
  for (Eigen::Index k = 0; k < total; ++k) dst[k] = static_cast<typename Out::Scalar>(src[total - 1 - k]);
  for (Eigen::Index j = 0; j < n; ++j)
    if (!(std::isfinite(u(j, j)) && u(j, j) > 0)) return false;
  return true;
}

bool all_finite(const float* p, size_t n) {
  // Exponent bits all ones = inf or NaN; an integer test the compiler vectorizes.
  uint32_t bad = 0;
  for (size_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, p + i, 4);
    bad |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  return bad == 0;
}

bool all_finite(const double* p, size_t n) {
  uint64_t bad = 0;
  for (size_t i = 0; i < n; ++i) {
    uint64_t bits;
    std::memcpy(&bits, p + i, 8);
    bad |= static_cast<uint64_t>((bits & 0x7ff0000000000000ull) == 0x7ff0000000000000ull);
  }
  return bad == 0;
}

}  // namespace

bool inverse_cholesky_upper(const MatrixD& h, MatrixD& u) {
  // With J the exchange matrix, J h J = L L^T gives h^-1 = (J L^-1 J)^T (J L^-1 J)
  // and J L^-1 J is upper triangular: one Cholesky and one triangular inverse
  // instead of Cholesky, inverse and a second Cholesky.
  MatrixD reversed = h.reverse();
  return inverse_cholesky_upper_reversed(reversed, u);
}

void check_quantize_inputs(const MatrixF& w, const MatrixD& h, const QuantSpec& spec, const GptqOptions& options) {
  const int m = static_cast<int>(w.rows());
  const int n = static_cast<int>(w.cols());
  spec.validate(m, n, "matrix");
  const bool have_h = h.size() > 0;
  AMLQ_ASSERT(!options.error_feedback || have_h, "GPTQ needs a Hessian");
  if (have_h) AMLQ_ASSERT(h.rows() == n && h.cols() == n, "Hessian is {} x {}, weight has {} columns", h.rows(), h.cols(), n);
  AMLQ_ASSERT(options.block_size > 0, "block size {}", options.block_size);
  AMLQ_REQUIRE(all_finite(w.data(), w.size()), "weight matrix [{} x {}] contains NaN or inf", m, n);
  if (have_h) AMLQ_REQUIRE(all_finite(h.data(), h.size()), "Hessian [{} x {}] contains NaN or inf", n, n);
}

QuantizedMatrix gptq_quantize(const MatrixF& w, const MatrixD& h, const QuantSpec& spec, const GptqOptions& options) {
  const int m = static_cast<int>(w.rows());
  const int n = static_cast<int>(w.cols());
  check_quantize_inputs(w, h, spec, options);
  const bool feedback = options.error_feedback;
  const bool have_h = h.size() > 0;

  QuantizedMatrix out;
  out.rows = m;
  out.cols = n;
  out.spec = spec;

  // Dead inputs (H_ii == 0) never reach the output: W column 0, H_ii = 1.
  VectorD diag = have_h ? VectorD(h.diagonal()) : VectorD::Ones(n);
  std::vector<char> dead(n, 0);
  for (int i = 0; i < n; ++i) {
    if (diag[i] == 0) {
      dead[i] = 1;
      diag[i] = 1;
      ++out.dead_columns;
    }
  }
  std::vector<int32_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  if (spec.act_order && have_h) {
    std::stable_sort(perm.begin(), perm.end(), [&](int a, int b) { return diag[a] > diag[b]; });
    out.perm = perm;
  }

  // Work on W^T in processing order: column j of W is the contiguous row j.
  MatrixF wt(n, m);
  for (int i0 = 0; i0 < m; i0 += 64) {
    const int i1 = std::min(m, i0 + 64);
    for (int j = 0; j < n; ++j) {
      const int c = perm[j];
      if (dead[c]) {
        wt.row(j).segment(i0, i1 - i0).setZero();
      } else {
        for (int i = i0; i < i1; ++i) wt(j, i) = w(i, c);
      }
    }
  }

  const auto ranges = spec.part_columns(n);
  std::vector<int> part_of(n);
  for (size_t p = 0; p < spec.parts.size(); ++p) {
    QuantizedMatrix::Part part;
    part.col_begin = ranges[p].first;
    part.col_end = ranges[p].second;
    part.bits = spec.parts[p].bits;
    const int width = part.col_end - part.col_begin;
    part.group = spec.parts[p].group == 0 ? width : spec.parts[p].group;
    part.num_groups = group_count(width, part.group);  // static groups: one part, width = n
    part.scales.resize(static_cast<size_t>(m) * part.num_groups);
    part.zeros.resize(static_cast<size_t>(m) * part.num_groups);
    for (int j = part.col_begin; j < part.col_end; ++j) part_of[j] = static_cast<int>(p);
    out.parts.push_back(std::move(part));
  }

  // Static groups: parameters from consecutive ORIGINAL columns before any update.
  const bool static_groups = spec.static_groups;
  if (static_groups) {
    auto& part = out.parts[0];
    std::vector<int> inverse(n);
    for (int j = 0; j < n; ++j) inverse[perm[j]] = j;
    for (int g = 0; g < part.num_groups; ++g) {
      Eigen::VectorXf lo = Eigen::VectorXf::Constant(m, std::numeric_limits<float>::infinity());
      Eigen::VectorXf hi = -lo;
      const int c_end = std::min(n, (g + 1) * part.group);  // the last group may be shorter
      for (int c = g * part.group; c < c_end; ++c) {
        lo = lo.cwiseMin(wt.row(inverse[c]).transpose());
        hi = hi.cwiseMax(wt.row(inverse[c]).transpose());
      }
      for (int i = 0; i < m; ++i) {
        const GroupParams gp = group_params(lo[i], hi[i], part.bits, spec.symmetric);
        part.scales[static_cast<size_t>(i) * part.num_groups + g] = float_to_fp16(gp.scale);
        part.zeros[static_cast<size_t>(i) * part.num_groups + g] = static_cast<uint8_t>(gp.zero);
      }
    }
  }

  // U = chol(H^-1) upper, from the permuted, damped Hessian (double precision).
  MatrixF uf;
  double damp_abs = 0;
  if (feedback) {
    // The permuted Hessian is gathered directly in reversed order (see
    // inverse_cholesky_upper_reversed) into the one n x n fp64 buffer that is then
    // factored in place; a retry with more dampening gathers it again rather than
    // keeping a second n^2 copy (6.6 GB for a 28672-wide down_proj).
    MatrixD damped(n, n);
    auto gather = [&] {
      for (int i = 0; i < n; ++i) {
        const int r = perm[n - 1 - i];
        for (int j = 0; j < n; ++j) damped(i, j) = h(r, perm[n - 1 - j]);
        if (dead[r]) damped(i, i) = 1;
      }
    };
    gather();
    const double mean_diag = damped.diagonal().mean();
    double lambda = options.damp;
    for (int attempt = 0;; ++attempt) {
      damp_abs = lambda * mean_diag;
      if (attempt > 0) gather();
      damped.diagonal().array() += damp_abs;
      if (inverse_cholesky_upper_reversed(damped, uf)) break;
      if (attempt >= options.max_damp_retries)
        AMLQ_FAIL(Numerical, "Cholesky of the damped Hessian [{} x {}] failed even with damp {:g}", n, n, lambda);
      AMLQ_LOG_WARN("Cholesky of the Hessian [{} x {}] failed with damp {:g}; retrying with {:g}", n, n, lambda,
                    lambda * 10);
      lambda *= 10;
      ++out.damp_escalations;
    }
    damped = MatrixD();  // the factor lives on in uf (fp32)
    out.damp_used = lambda;
  }

  out.codes.assign(static_cast<size_t>(m) * n, 0);
  const auto blocks = make_blocks(out, options.block_size, static_groups);
  int max_block = 0;
  for (const auto& b : blocks) max_block = std::max(max_block, b.end - b.begin);
  MatrixF err_block(feedback ? max_block : 0, m);
  Eigen::VectorXf scale_t(kRowTile), err(kRowTile);
  Eigen::VectorXi zero_t(kRowTile);
  double scaled_err_sq = 0;

  for (const auto& blk : blocks) {
    const int bs = blk.end - blk.begin;
    for (int i0 = 0; i0 < m; i0 += kRowTile) {
      const int tw = std::min(kRowTile, m - i0);
      for (int j = blk.begin; j < blk.end; ++j) {
        auto& part = out.parts[part_of[j]];
        const int maxq = (1 << part.bits) - 1;
        const auto load_params = [&](int g) {
          for (int i = 0; i < tw; ++i) {
            const size_t at = static_cast<size_t>(i0 + i) * part.num_groups + g;
            scale_t[i] = fp16_to_float(part.scales[at]);
            zero_t[i] = part.zeros[at];
          }
        };
        const int local = j - part.col_begin;
        if (static_groups) {
          load_params(perm[j] / part.group);
        } else if (local % part.group != 0) {
          // A group wider than the block, continued from an earlier block: scale_t
          // holds another row tile's parameters by now.
          if (j == blk.begin) load_params(local / part.group);
        } else {
          const int g = local / part.group;
          const auto cols = wt.block(j, i0, std::min(part.group, part.col_end - j), tw);
          const Eigen::VectorXf lo = cols.colwise().minCoeff().transpose();
          const Eigen::VectorXf hi = cols.colwise().maxCoeff().transpose();
          for (int i = 0; i < tw; ++i) {
            const GroupParams gp = group_params(lo[i], hi[i], part.bits, spec.symmetric);
            const size_t at = static_cast<size_t>(i0 + i) * part.num_groups + g;
            part.scales[at] = float_to_fp16(gp.scale);
            part.zeros[at] = static_cast<uint8_t>(gp.zero);
            scale_t[i] = gp.scale;
            zero_t[i] = gp.zero;
          }
        }
        float* col = wt.row(j).data() + i0;
        uint8_t* codes = out.codes.data() + static_cast<size_t>(i0) * n + j;
        const float d = feedback ? uf(j, j) : 1.0f;
        for (int i = 0; i < tw; ++i) {
          const int q = quantize_value(col[i], scale_t[i], zero_t[i], maxq);
          codes[static_cast<size_t>(i) * n] = static_cast<uint8_t>(q);
          err[i] = (col[i] - dequantize_value(q, scale_t[i], zero_t[i])) / d;
        }
        if (!feedback) continue;
        const auto e = err.head(tw);
        scaled_err_sq += static_cast<double>(e.squaredNorm());
        err_block.row(j - blk.begin).segment(i0, tw) = e.transpose();
        for (int k = j + 1; k < blk.end; ++k) wt.row(k).segment(i0, tw) -= uf(j, k) * e.transpose();
      }
    }
    // The lazy update of all later columns: one GEMM per block.
    if (feedback && blk.end < n) {
      wt.bottomRows(n - blk.end).noalias() -=
          uf.block(blk.begin, blk.end, bs, n - blk.end).transpose() * err_block.topRows(bs);
    }
  }

  if (feedback) {
    // tr(E H_d E^T) = ||Err||^2 exactly (E = Err U); remove the dampening term.
    const MatrixF w_hat = dequantize(out);
    double e_sq = 0;
    for (int i = 0; i < m; ++i)
      for (int c = 0; c < n; ++c) {
        const double e = dead[c] ? 0.0 : static_cast<double>(w(i, c)) - w_hat(i, c);
        e_sq += e * e;
      }
    out.output_error = std::max(0.0, scaled_err_sq - damp_abs * e_sq);
  }
  return out;
}

}  // namespace amlq
