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

// Blocks of block_size columns from each part's start, the last one of a part
// shorter (gptq_blocks). Groups may start inside a block or run past its end:
// their parameters come from the block-start snapshot (METHOD.md 3).
std::vector<Block> make_blocks(const QuantizedMatrix& q, int block_size) {
  std::vector<std::pair<int, int>> ranges;
  for (const auto& part : q.parts) ranges.emplace_back(part.col_begin, part.col_end);
  std::vector<Block> blocks;
  for (const auto& [begin, end] : gptq_blocks(ranges, block_size)) blocks.push_back({begin, end});
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

// Cholesky of `m` = J h J (row-major, overwritten) and then, in the same
// buffer, U = J L^-1 J (upper, h^-1 = U^T U). Because J M J of a row-major
// matrix is its flat array reversed, U is one in-place reversal away from
// L^-1. Returns false when h is not positive definite (m is then garbage).
bool inverse_cholesky_upper_in_place(MatrixD& m) {
  const Eigen::Index n = m.rows();
  Eigen::LLT<Eigen::Ref<MatrixD>> llt(m);
  if (llt.info() != Eigen::Success) return false;
  invert_lower_in_place(m);  // reads only the lower triangle, zeroes the upper
  std::reverse(m.data(), m.data() + n * n);
  for (Eigen::Index j = 0; j < n; ++j)
    if (!(std::isfinite(m(j, j)) && m(j, j) > 0)) return false;
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
  u = h.reverse();
  return inverse_cholesky_upper_in_place(u);
}

std::vector<std::pair<int, int>> gptq_blocks(const std::vector<std::pair<int, int>>& part_ranges, int block_size) {
  AMLQ_ASSERT(block_size > 0, "block size {}", block_size);
  std::vector<std::pair<int, int>> blocks;
  for (const auto& [begin, end] : part_ranges)
    for (int c = begin; c < end; c += block_size) blocks.emplace_back(c, std::min(c + block_size, end));
  return blocks;
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

GptqColumns gptq_columns(const MatrixD& h, int cols, bool act_order) {
  GptqColumns c;
  c.cols = cols;
  c.has_hessian = h.size() > 0;
  if (!c.has_hessian) {
    c.mean_diag = 1;
    return c;
  }
  AMLQ_ASSERT(h.rows() == cols && h.cols() == cols, "Hessian is {} x {} for {} columns", h.rows(), h.cols(), cols);
  // Dead inputs (H_ii == 0) never reach the output: W column 0, H_ii = 1.
  VectorD diag = h.diagonal();
  c.dead.assign(static_cast<size_t>(cols), 0);
  for (int i = 0; i < cols; ++i) {
    if (diag[i] == 0) {
      c.dead[static_cast<size_t>(i)] = 1;
      diag[i] = 1;
      ++c.dead_count;
    }
  }
  c.mean_diag = cols > 0 ? diag.mean() : 0;
  c.act_order = act_order;
  if (act_order) {
    c.perm.resize(static_cast<size_t>(cols));
    std::iota(c.perm.begin(), c.perm.end(), 0);
    std::stable_sort(c.perm.begin(), c.perm.end(), [&](int a, int b) { return diag[a] > diag[b]; });
  }
  return c;
}

GptqFactor gptq_factor(const MatrixD& h, bool act_order, const GptqOptions& options, bool factorize) {
  const int n = static_cast<int>(h.rows());
  AMLQ_ASSERT(h.size() > 0, "a factor needs a Hessian");
  AMLQ_REQUIRE(all_finite(h.data(), h.size()), "Hessian [{} x {}] contains NaN or inf", n, n);
  GptqFactor f;
  f.columns = gptq_columns(h, n, act_order);
  if (!factorize) return f;
  const GptqColumns& c = f.columns;
  // The permuted Hessian is gathered directly in reversed order (see
  // inverse_cholesky_upper_in_place); U is then written into the same buffer.
  auto gather_reversed = [&](MatrixD& out) {
    out.resize(n, n);
    for (int i = 0; i < n; ++i) {
      const int r = c.original(n - 1 - i);
      for (int j = 0; j < n; ++j) out(i, j) = h(r, c.original(n - 1 - j));
      if (c.is_dead(r)) out(i, i) = 1;
    }
  };
  double lambda = options.damp;
  for (int attempt = 0;; ++attempt) {
    f.damp_abs = lambda * c.mean_diag;
    gather_reversed(f.u);  // a failed attempt has overwritten it
    f.u.diagonal().array() += f.damp_abs;
    if (inverse_cholesky_upper_in_place(f.u)) break;
    if (attempt >= options.max_damp_retries)
      AMLQ_FAIL(Numerical, "Cholesky of the damped Hessian [{} x {}] failed even with damp {:g}", n, n, lambda);
    AMLQ_LOG_WARN("Cholesky of the Hessian [{} x {}] failed with damp {:g}; retrying with {:g}", n, n, lambda,
                  lambda * 10);
    lambda *= 10;
    ++f.damp_escalations;
  }
  f.damp_used = lambda;
  f.factored = true;
  return f;
}

double reconstruction_error_sq(const MatrixF& w, const QuantizedMatrix& q, const GptqColumns& columns) {
  const int m = q.rows, n = q.cols;
  AMLQ_ASSERT(w.rows() == m && w.cols() == n, "W [{} x {}] for a quantized [{} x {}]", w.rows(), w.cols(), m, n);
  double total = 0;
  for (const auto& part : q.parts) {
    for (int i = 0; i < m; ++i) {
      const uint8_t* codes = q.codes.data() + static_cast<size_t>(i) * n;
      const size_t param_row = static_cast<size_t>(i) * part.num_groups;
      double row = 0;
      for (int j = part.col_begin; j < part.col_end; ++j) {
        const int c = q.perm.empty() ? j : q.perm[static_cast<size_t>(j)];
        if (columns.is_dead(c)) continue;
        const int g = group_of(part, j, c, q.spec.static_groups);
        const float w_hat = dequantize_value(codes[j], fp16_to_float(part.scales[param_row + g]), part.zeros[param_row + g]);
        const double e = static_cast<double>(w(i, c)) - w_hat;
        row += e * e;
      }
      total += row;
    }
  }
  return total;
}

QuantizedMatrix gptq_quantize(const MatrixF& w, const GptqFactor& factor, const QuantSpec& spec,
                              const GptqOptions& options, MatrixF* scaled_errors) {
  const int m = static_cast<int>(w.rows());
  const int n = static_cast<int>(w.cols());
  const GptqColumns& columns = factor.columns;
  spec.validate(m, n, "matrix");
  AMLQ_ASSERT(columns.cols == n, "factor of {} columns for a weight with {}", columns.cols, n);
  AMLQ_ASSERT(columns.act_order == (spec.act_order && columns.has_hessian),
              "factor ordered {}act-order for spec {}", columns.act_order ? "" : "without ", spec.label());
  const bool feedback = options.error_feedback;
  AMLQ_ASSERT(!feedback || factor.factored, "GPTQ needs a factored Hessian");
  AMLQ_ASSERT(!scaled_errors || feedback, "scaled errors exist only with error feedback");
  AMLQ_ASSERT(options.block_size > 0, "block size {}", options.block_size);
  AMLQ_REQUIRE(all_finite(w.data(), w.size()), "weight matrix [{} x {}] contains NaN or inf", m, n);

  QuantizedMatrix out;
  out.rows = m;
  out.cols = n;
  out.spec = spec;
  out.dead_columns = columns.dead_count;
  if (columns.act_order) out.perm = columns.perm;
  if (feedback) {
    out.damp_used = factor.damp_used;
    out.damp_escalations = factor.damp_escalations;
  }

  // Work on W^T in processing order: column j of W is the contiguous row j.
  MatrixF wt(n, m);
  for (int i0 = 0; i0 < m; i0 += 64) {
    const int i1 = std::min(m, i0 + 64);
    for (int j = 0; j < n; ++j) {
      const int c = columns.original(j);
      if (columns.is_dead(c)) {
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
    for (int j = 0; j < n; ++j) inverse[columns.original(j)] = j;
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

  out.codes.assign(static_cast<size_t>(m) * n, 0);
  const auto blocks = make_blocks(out, options.block_size);
  int max_block = 0;
  for (const auto& b : blocks) max_block = std::max(max_block, b.end - b.begin);
  MatrixF err_block(feedback ? max_block : 0, m);
  // The block's rows of U, U[begin:end, begin:], in float: the factor is shared
  // (double, read-only) and each pass converts only the panel it is working on.
  MatrixF panel;
  // The block's columns of one row tile as they stood when the block began: the
  // reference reads group parameters from W, to which the in-block updates of
  // the block's earlier columns are not yet applied (METHOD.md 3).
  MatrixF block_start;
  Eigen::VectorXf scale_t(kRowTile), err(kRowTile);
  Eigen::VectorXi zero_t(kRowTile);
  double scaled_err_sq = 0;

  for (const auto& blk : blocks) {
    const int bs = blk.end - blk.begin;
    if (feedback) panel = factor.u.block(blk.begin, blk.begin, bs, n - blk.begin).cast<float>();
    for (int i0 = 0; i0 < m; i0 += kRowTile) {
      const int tw = std::min(kRowTile, m - i0);
      if (feedback && !static_groups) block_start = wt.block(blk.begin, i0, bs, tw);
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
          load_params(columns.original(j) / part.group);
        } else if (local % part.group != 0) {
          // A group wider than the block, continued from an earlier block: scale_t
          // holds another row tile's parameters by now.
          if (j == blk.begin) load_params(local / part.group);
        } else {
          const int g = local / part.group;
          // Columns [j, group_end): those inside this block from the snapshot (RTN
          // never updates, so wt is the snapshot), those after it from wt, which
          // this block's lazy update has not reached yet.
          const int group_end = std::min(j + part.group, part.col_end);
          const int inside_end = std::min(group_end, blk.end);
          const auto inside = feedback ? block_start.block(j - blk.begin, 0, inside_end - j, tw)
                                       : wt.block(j, i0, inside_end - j, tw);
          Eigen::VectorXf lo = inside.colwise().minCoeff().transpose();
          Eigen::VectorXf hi = inside.colwise().maxCoeff().transpose();
          if (group_end > inside_end) {
            const auto after = wt.block(inside_end, i0, group_end - inside_end, tw);
            lo = lo.cwiseMin(after.colwise().minCoeff().transpose());
            hi = hi.cwiseMax(after.colwise().maxCoeff().transpose());
          }
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
        const int local_j = j - blk.begin;
        const float d = feedback ? panel(local_j, local_j) : 1.0f;
        for (int i = 0; i < tw; ++i) {
          const int q = quantize_value(col[i], scale_t[i], zero_t[i], maxq);
          codes[static_cast<size_t>(i) * n] = static_cast<uint8_t>(q);
          err[i] = (col[i] - dequantize_value(q, scale_t[i], zero_t[i])) / d;
        }
        if (!feedback) continue;
        const auto e = err.head(tw);
        scaled_err_sq += static_cast<double>(e.squaredNorm());
        err_block.row(local_j).segment(i0, tw) = e.transpose();
        for (int k = j + 1; k < blk.end; ++k) wt.row(k).segment(i0, tw) -= panel(local_j, k - blk.begin) * e.transpose();
        // Column j of this row tile is final: its slot keeps the scaled error.
        if (scaled_errors) wt.row(j).segment(i0, tw) = e.transpose();
      }
    }
    // The lazy update of all later columns: one GEMM per block.
    if (feedback && blk.end < n) {
      wt.bottomRows(n - blk.end).noalias() -= panel.rightCols(n - blk.end).transpose() * err_block.topRows(bs);
    }
  }

  if (feedback) {
    // tr(E H_d E^T) = ||Err||^2 exactly (E = Err U); remove the dampening term.
    const double e_sq = reconstruction_error_sq(w, out, columns);
    out.output_error = std::max(0.0, scaled_err_sq - factor.damp_abs * e_sq);
  }
  if (scaled_errors) *scaled_errors = std::move(wt);
  return out;
}

QuantizedMatrix gptq_quantize(const MatrixF& w, const MatrixD& h, const QuantSpec& spec, const GptqOptions& options) {
  check_quantize_inputs(w, h, spec, options);
  if (h.size() == 0) {  // RTN without statistics: identity order, nothing dead
    GptqFactor plain;
    plain.columns = gptq_columns(h, static_cast<int>(w.cols()), false);
    return gptq_quantize(w, plain, spec, options);
  }
  return gptq_quantize(w, gptq_factor(h, spec.act_order, options, options.error_feedback), spec, options);
}

}  // namespace amlq
