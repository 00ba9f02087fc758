#include <gtest/gtest.h>

#include <random>

#include "backend/backend.h"
#include "model/hessian_accumulator.h"
#include "pipeline/distributed.h"

namespace amlq {
namespace {

MatrixF random_tokens(int samples, int tokens, int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, 1.f);
  MatrixF x(samples * tokens, n);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = dist(rng) * (i % 7 == 0 ? 30.f : 1.f);
  return x;
}

// The single-process sum, and the same samples split over replicas at block
// boundaries and merged through serialized nodes, must agree bit for bit.
TEST(HessianAccumulator, ReplicaSplitsMergeBitIdentically) {
  auto backend = make_backend("cpu");
  const int samples = 48, tokens = 5, n = 6, block = 4;
  const MatrixF x = random_tokens(samples, tokens, n, 7);
  HessianAccumulator whole(n, block);
  for (int s = 0; s < samples; s += 3) whole.add(*backend, x.middleRows(s * tokens, 3 * tokens), s, 3);
  whole.finish();

  for (int replicas : {2, 3, 4, 6}) {
    HessianAccumulator merged;
    const int share = samples / replicas;
    for (int r = 0; r < replicas; ++r) {
      HessianAccumulator part(n, block);
      for (int s = r * share; s < (r + 1) * share; ++s) part.add(*backend, x.middleRows(s * tokens, tokens), s, 1);
      part.finish();
      merged.merge(deserialize_nodes(serialize_nodes(part.nodes())));
    }
    EXPECT_EQ(merged.tokens(), whole.tokens());
    EXPECT_TRUE((merged.hessian().array() == whole.hessian().array()).all()) << replicas << " replicas";
    EXPECT_TRUE((merged.act_scale().array() == whole.act_scale().array()).all()) << replicas << " replicas";
  }
}

TEST(HessianAccumulator, EqualsTwoOverNXXt) {
  auto backend = make_backend("cpu");
  const MatrixF x = random_tokens(10, 4, 5, 3);
  HessianAccumulator acc(5, 4);
  acc.add(*backend, x, 0, 10);
  acc.finish();
  const MatrixD xd = x.cast<double>();
  const MatrixD expected = 2.0 / 40.0 * xd.transpose() * xd;
  EXPECT_LT((acc.hessian() - expected).cwiseAbs().maxCoeff(), 1e-9 * expected.cwiseAbs().maxCoeff());
  const VectorD mean_abs = xd.cwiseAbs().colwise().sum().transpose() / 40.0;
  EXPECT_LT((acc.act_scale() - mean_abs).cwiseAbs().maxCoeff(), 1e-12);
}

TEST(LinearMetadata, RoundTripsEverythingTheLayoutNeeds) {
  PackedLinear l;
  l.name = "model.layers.2.mlp.up_proj";
  l.rows = 10;
  l.cols = 40;
  l.spec = QuantSpec::parse("25%4b-g32+75%3b-row");
  l.perm.assign(40, 0);
  l.parts = {PackedPart{0, 10, 4, 10, 1, {}, {}, {}}, PackedPart{10, 40, 3, 30, 1, {}, {}, {}}};
  l.lowrank = LowRankMethod::Whiten;
  l.rank = 4;
  l.eps = 1.25e-3;
  l.bpw = 3.123456789012345;
  const PackedLinear back = linear_from_metadata(linear_metadata(l));
  EXPECT_EQ(back.name, l.name);
  EXPECT_EQ(back.spec, l.spec);
  EXPECT_EQ(back.perm.size(), 40u);
  EXPECT_EQ(back.parts.size(), 2u);
  EXPECT_EQ(back.parts[1].bits, 3);
  EXPECT_EQ(back.rank, 4);
  EXPECT_EQ(back.eps, l.eps);
  EXPECT_EQ(back.bpw, l.bpw);
  EXPECT_TRUE(back.bias.empty());
}

}  // namespace
}  // namespace amlq
