#include "tests/model/reference_layer.h"

#include <cmath>
#include <vector>

#include "model/rope.h"

namespace amlq::test {
namespace {

MatrixD rms_norm(const MatrixD& x, const VectorF& w, double eps) {
  MatrixD y(x.rows(), x.cols());
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    double ss = 0;
    for (Eigen::Index c = 0; c < x.cols(); ++c) ss += x(r, c) * x(r, c);
    const double inv = 1.0 / std::sqrt(ss / x.cols() + eps);
    for (Eigen::Index c = 0; c < x.cols(); ++c) y(r, c) = x(r, c) * inv * w[c];
  }
  return y;
}

MatrixD linear(const MatrixD& x, const LinearWeights& l) {
  MatrixD y(x.rows(), l.dense.rows());
  for (Eigen::Index r = 0; r < x.rows(); ++r)
    for (Eigen::Index o = 0; o < l.dense.rows(); ++o) {
      double acc = l.bias.size() ? l.bias[o] : 0.0;
      for (Eigen::Index i = 0; i < x.cols(); ++i) acc += x(r, i) * l.dense(o, i);
      y(r, o) = acc;
    }
  return y;
}

void rope(MatrixD& x, int seqlen, int heads, int head_dim, const std::vector<double>& inv) {
  const int half = head_dim / 2;
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    const int pos = static_cast<int>(r % seqlen);
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < half; ++i) {
        const double c = std::cos(pos * inv[i]), s = std::sin(pos * inv[i]);
        const double a = x(r, h * head_dim + i), b = x(r, h * head_dim + half + i);
        x(r, h * head_dim + i) = a * c - b * s;
        x(r, h * head_dim + half + i) = b * c + a * s;
      }
  }
}

}  // namespace

MatrixD reference_decoder_layer(const ModelConfig& c, const DecoderLayerWeights& w, const MatrixD& hidden, int batch,
                                int seqlen, ReferenceInputs* inputs) {
  const int d = c.head_dim, group = c.num_heads / c.num_kv_heads;
  const auto inv = rope_inverse_frequencies(c);
  MatrixD attn_in = rms_norm(hidden, w.input_norm, c.rms_norm_eps);
  MatrixD q = linear(attn_in, w.linears[0]), k = linear(attn_in, w.linears[1]), v = linear(attn_in, w.linears[2]);
  rope(q, seqlen, c.num_heads, d, inv);
  rope(k, seqlen, c.num_kv_heads, d, inv);
  MatrixD attn_out = MatrixD::Zero(hidden.rows(), c.num_heads * d);
  std::vector<double> p(static_cast<size_t>(seqlen));
  for (int b = 0; b < batch; ++b)
    for (int h = 0; h < c.num_heads; ++h) {
      const int kvh = h / group;
      for (int t = 0; t < seqlen; ++t) {
        const int r = b * seqlen + t;
        double m = -1e300;
        for (int u = 0; u <= t; ++u) {
          double dot = 0;
          for (int i = 0; i < d; ++i) dot += q(r, h * d + i) * k(b * seqlen + u, kvh * d + i);
          p[u] = dot / std::sqrt(static_cast<double>(d));
          m = std::max(m, p[u]);
        }
        double z = 0;
        for (int u = 0; u <= t; ++u) z += (p[u] = std::exp(p[u] - m));
        for (int u = 0; u <= t; ++u)
          for (int i = 0; i < d; ++i) attn_out(r, h * d + i) += p[u] / z * v(b * seqlen + u, kvh * d + i);
      }
    }
  MatrixD h1 = hidden + linear(attn_out, w.linears[3]);
  MatrixD mlp_in = rms_norm(h1, w.post_attention_norm, c.rms_norm_eps);
  const MatrixD gate = linear(mlp_in, w.linears[4]), up = linear(mlp_in, w.linears[5]);
  MatrixD mlp_out(gate.rows(), gate.cols());
  for (Eigen::Index i = 0; i < gate.size(); ++i)
    mlp_out.data()[i] = gate.data()[i] / (1.0 + std::exp(-gate.data()[i])) * up.data()[i];
  MatrixD out = h1 + linear(mlp_out, w.linears[6]);
  if (inputs) *inputs = {attn_in, attn_out, mlp_in, mlp_out};
  return out;
}

}  // namespace amlq::test
