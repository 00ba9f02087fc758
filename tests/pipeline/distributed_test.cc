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
  // Each sample's product in fp32 (METHOD.md 1), the sums over samples in fp64.
  EXPECT_LT((acc.hessian() - expected).cwiseAbs().maxCoeff(), 1e-6 * expected.cwiseAbs().maxCoeff());
  const VectorD mean_abs = xd.cwiseAbs().colwise().sum().transpose() / 40.0;
  EXPECT_LT((acc.act_scale() - mean_abs).cwiseAbs().maxCoeff(), 1e-12);
}

// The pipeline's path: take_result folds the nodes in place and must give the
// same bits as hessian() / act_scale().
TEST(HessianAccumulator, TakeResultEqualsTheCopyingAccessors) {
  auto backend = make_backend("cpu");
  const MatrixF x = random_tokens(13, 4, 6, 11);
  HessianAccumulator acc(6, 2);
  for (int s = 0; s < 13; ++s) acc.add(*backend, x.middleRows(s * 4, 4), s, 1);
  acc.finish();
  const MatrixD h = acc.hessian();
  const VectorD a = acc.act_scale();
  const auto r = acc.take_result();
  EXPECT_EQ(r.tokens, 52);
  EXPECT_TRUE((r.hessian.array() == h.array()).all());
  EXPECT_TRUE((r.act_scale.array() == a.array()).all());
}

// The memory prediction's count of n x n matrices alive while accumulating.
TEST(HessianAccumulator, PeakMatricesFollowsTheTree) {
  EXPECT_EQ(HessianAccumulator::peak_matrices(0, 1), 1);
  EXPECT_EQ(HessianAccumulator::peak_matrices(0, 2), 2);   // block 0 waits while block 1 is open
  EXPECT_EQ(HessianAccumulator::peak_matrices(0, 4), 3);   // [0,2) and 2 wait while 3 is open
  EXPECT_EQ(HessianAccumulator::peak_matrices(0, 16), 5);  // 8+4+2+1 wait while 15 is open
  EXPECT_EQ(HessianAccumulator::peak_matrices(16, 16), 5); // an aligned replica share behaves the same
}

TEST(PackedLinearMessage, RoundTripsTensorsAndMetadata) {
  PackedLinear l;
  l.name = "model.layers.0.self_attn.q_proj";
  l.rows = 3;
  l.cols = 5;
  l.perm = {4, 3, 2, 1, 0};
  PackedPart p;
  p.col_begin = 0;
  p.col_end = 5;
  p.bits = 3;
  p.group = 5;
  p.num_groups = 1;
  p.codes = {1, 2, 3};
  p.scales = {7, 8, 9};
  p.zeros = {4, 5, 6};
  l.parts.push_back(p);
  l.rank = 1;
  l.lowrank = LowRankMethod::Whiten;
  l.a_fp16 = {10, 11, 12};
  l.b_fp16 = {13, 14, 15, 16, 17};
  l.bias = {0.5f, -1.0f, 2.0f};
  l.eps = 0.125;
  l.bpw = 3.5;
  const auto bytes = serialize_packed_linear(l);
  const PackedLinear back = deserialize_packed_linear(bytes);
  EXPECT_EQ(back.name, l.name);
  EXPECT_EQ(back.perm, l.perm);
  EXPECT_EQ(back.parts[0].codes, p.codes);
  EXPECT_EQ(back.parts[0].scales, p.scales);
  EXPECT_EQ(back.parts[0].zeros, p.zeros);
  EXPECT_EQ(back.a_fp16, l.a_fp16);
  EXPECT_EQ(back.b_fp16, l.b_fp16);
  EXPECT_EQ(back.bias, l.bias);
  EXPECT_EQ(back.eps, l.eps);
  EXPECT_EQ(back.bpw, l.bpw);
  EXPECT_EQ(back.rank, 1);
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
