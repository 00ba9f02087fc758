// Forward-pass pieces of the CPU backend: Eigen GEMMs with fp32 accumulation.
// Buffers are sized once per call (per batch of sequences), never per token.
#include <algorithm>
#include <cmath>
#include <limits>

#include "backend/cpu/cpu_ops.h"
#include "core/error.h"

namespace amlq::cpu {
namespace {

using StridedBlock = Eigen::Map<const MatrixF, Eigen::Unaligned, Eigen::OuterStride<>>;
using StridedBlockMut = Eigen::Map<MatrixF, Eigen::Unaligned, Eigen::OuterStride<>>;

// Rows of queries handled per attention step: keys beyond the block's last row
// are never touched, so the causal half of QK^T and PV is skipped.
constexpr int kQueryBlock = 64;

}  // namespace

void linear(const MatrixF& x, const MatrixF& w, const VectorF& bias, MatrixF& y) {
  AMLQ_ASSERT(x.cols() == w.cols(), "linear: input has {} features, weight expects {}", x.cols(), w.cols());
  AMLQ_ASSERT(bias.size() == 0 || bias.size() == w.rows(), "linear: bias of {} for {} outputs", bias.size(),
              w.rows());
  AMLQ_ASSERT(&x != &y, "linear: output aliases input");
  y.resize(x.rows(), w.rows());
  const Eigen::Index m = w.rows();
  const int tiles = static_cast<int>((m + kLinearRowTile - 1) / kLinearRowTile);
  run_tiles(tiles, 2.0 * static_cast<double>(x.rows()) * static_cast<double>(x.cols()) * static_cast<double>(m),
            [&](int t) {
              const Eigen::Index r0 = t * kLinearRowTile, rows = std::min(kLinearRowTile, m - r0);
              y.middleCols(r0, rows).noalias() = x * w.middleRows(r0, rows).transpose();
              if (bias.size() != 0) y.middleCols(r0, rows).rowwise() += bias.segment(r0, rows).transpose();
            });
}

void rms_norm(const MatrixF& x, const VectorF& weight, float eps, MatrixF& y) {
  AMLQ_ASSERT(weight.size() == x.cols(), "rms_norm: weight of {} for {} features", weight.size(), x.cols());
  y.resize(x.rows(), x.cols());
  const float inv_n = 1.0f / static_cast<float>(x.cols());
  const Eigen::Index rows = x.rows();
  const int tiles = static_cast<int>((rows + kElementRowTile - 1) / kElementRowTile);
  run_tiles(tiles, 4.0 * static_cast<double>(x.size()), [&](int t) {
    const Eigen::Index r_end = std::min(rows, (t + 1) * kElementRowTile);
    for (Eigen::Index r = t * kElementRowTile; r < r_end; ++r) {
      const float mean_sq = x.row(r).squaredNorm() * inv_n;
      const float inv_rms = 1.0f / std::sqrt(mean_sq + eps);
      y.row(r) = (x.row(r).array() * inv_rms) * weight.transpose().array();
    }
  });
}

void rope(MatrixF& x, int batch, int seqlen, int heads, int head_dim, const MatrixF& cos, const MatrixF& sin) {
  const int half = head_dim / 2;
  AMLQ_ASSERT(head_dim % 2 == 0, "rope: odd head_dim {}", head_dim);
  AMLQ_ASSERT(x.rows() == static_cast<Eigen::Index>(batch) * seqlen && x.cols() == heads * head_dim,
              "rope: x is {}x{}, expected {}x{}", x.rows(), x.cols(), batch * seqlen, heads * head_dim);
  AMLQ_ASSERT(cos.rows() >= seqlen && cos.cols() == half && sin.rows() == cos.rows() && sin.cols() == half,
              "rope: tables {}x{} for seqlen {} half-dim {}", cos.rows(), cos.cols(), seqlen, half);
  for (int b = 0; b < batch; ++b) {
    for (int t = 0; t < seqlen; ++t) {
      float* row = x.data() + (static_cast<Eigen::Index>(b) * seqlen + t) * x.cols();
      const float* c = cos.data() + static_cast<Eigen::Index>(t) * half;
      const float* s = sin.data() + static_cast<Eigen::Index>(t) * half;
      for (int h = 0; h < heads; ++h) {
        float* lo = row + h * head_dim;
        float* hi = lo + half;
        // HF rotate_half: (lo, hi) -> (lo cos - hi sin, hi cos + lo sin).
        for (int i = 0; i < half; ++i) {
          const float a = lo[i];
          const float bv = hi[i];
          lo[i] = a * c[i] - bv * s[i];
          hi[i] = bv * c[i] + a * s[i];
        }
      }
    }
  }
}

void attention(const MatrixF& q, const MatrixF& k, const MatrixF& v, int batch, int seqlen, int heads, int kv_heads,
               int head_dim, MatrixF& out) {
  const Eigen::Index tokens = static_cast<Eigen::Index>(batch) * seqlen;
  AMLQ_ASSERT(heads % kv_heads == 0, "attention: {} heads over {} kv heads", heads, kv_heads);
  AMLQ_ASSERT(q.rows() == tokens && q.cols() == heads * head_dim, "attention: q is {}x{}", q.rows(), q.cols());
  AMLQ_ASSERT(k.rows() == tokens && k.cols() == kv_heads * head_dim, "attention: k is {}x{}", k.rows(), k.cols());
  AMLQ_ASSERT(v.rows() == tokens && v.cols() == kv_heads * head_dim, "attention: v is {}x{}", v.rows(), v.cols());
  out.resize(tokens, heads * head_dim);
  const int group = heads / kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  // One (sequence, head) pair per work item: each writes its own block of `out`.
  const double flops = 2.0 * batch * heads * static_cast<double>(seqlen) * seqlen * head_dim;
  run_tiles(batch * heads, flops, [&](int item) {
    const int b = item / heads, h = item % heads;
    thread_local MatrixF scores;
    scores.resize(std::min(kQueryBlock, seqlen), seqlen);
    const Eigen::Index row0 = static_cast<Eigen::Index>(b) * seqlen;
    {
      const int kvh = h / group;
      const StridedBlock kh(k.data() + row0 * k.cols() + kvh * head_dim, seqlen, head_dim,
                            Eigen::OuterStride<>(k.cols()));
      const StridedBlock vh(v.data() + row0 * v.cols() + kvh * head_dim, seqlen, head_dim,
                            Eigen::OuterStride<>(v.cols()));
      for (int r0 = 0; r0 < seqlen; r0 += kQueryBlock) {
        const int rows = std::min(kQueryBlock, seqlen - r0);
        const int keys = r0 + rows;  // causal: this block sees keys [0, keys)
        const StridedBlock qh(q.data() + (row0 + r0) * q.cols() + h * head_dim, rows, head_dim,
                              Eigen::OuterStride<>(q.cols()));
        StridedBlockMut oh(out.data() + (row0 + r0) * out.cols() + h * head_dim, rows, head_dim,
                           Eigen::OuterStride<>(out.cols()));
        auto s = scores.topLeftCorner(rows, keys);
        s.noalias() = (qh * scale) * kh.topRows(keys).transpose();
        for (int i = 0; i < rows; ++i) {
          const int visible = r0 + i + 1;
          auto valid = s.row(i).head(visible).array();
          const float m = valid.maxCoeff();
          valid = (valid - m).exp();
          valid /= valid.sum();
          s.row(i).tail(keys - visible).setZero();
        }
        oh.noalias() = s * vh.topRows(keys);
      }
    }
  });
}

void swiglu(const MatrixF& gate, const MatrixF& up, MatrixF& out) {
  AMLQ_ASSERT(gate.rows() == up.rows() && gate.cols() == up.cols(), "swiglu: gate {}x{} vs up {}x{}", gate.rows(),
              gate.cols(), up.rows(), up.cols());
  out.resize(gate.rows(), gate.cols());
  const Eigen::Index rows = gate.rows();
  const int tiles = static_cast<int>((rows + kElementRowTile - 1) / kElementRowTile);
  run_tiles(tiles, 20.0 * static_cast<double>(gate.size()), [&](int t) {
    const Eigen::Index r0 = t * kElementRowTile, n = std::min(kElementRowTile, rows - r0);
    const auto g = gate.middleRows(r0, n).array();
    out.middleRows(r0, n).array() = g / (1.0f + (-g).exp()) * up.middleRows(r0, n).array();
  });
}

}  // namespace amlq::cpu
