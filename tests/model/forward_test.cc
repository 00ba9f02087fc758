#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <random>

#include "backend/backend.h"
#include "core/error.h"
#include "model/forward.h"
#include "model/rope.h"
#include "tests/model/reference_layer.h"
#include "tests/model/synthetic_model.h"
#include "tests/test_util.h"

namespace amlq {
namespace {

double max_rel_diff(const MatrixD& a, const MatrixD& b) {
  return (a - b).cwiseAbs().maxCoeff() / std::max(1e-30, b.cwiseAbs().maxCoeff());
}

std::vector<int32_t> random_ids(int n, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& id : ids) id = static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab));
  return ids;
}

TEST(Rope, Llama3ScalingKeepsHighSlowsLowAndBlendsTheBand) {
  const ModelConfig c = test::synthetic_config();  // head_dim 8, theta 1e4, factor 8, band [16, 64]
  const auto inv = rope_inverse_frequencies(c);
  ASSERT_EQ(inv.size(), 4u);
  EXPECT_DOUBLE_EQ(inv[0], 1.0);  // wavelength 6.3 < 16: unchanged
  const double wavelen = 2 * std::numbers::pi / 0.1;  // 62.8: inside the band
  const double smooth = (64.0 / wavelen - 1.0) / 3.0;
  EXPECT_NEAR(inv[1], (1 - smooth) * 0.1 / 8 + smooth * 0.1, 1e-15);
  EXPECT_NEAR(inv[2], 0.01 / 8, 1e-17);  // wavelength 628 > 64: divided by factor
  EXPECT_NEAR(inv[3], 0.001 / 8, 1e-18);
}

TEST(Rope, LinearScalingDividesFrequenciesAndTablesHoldCosSin) {
  ModelConfig c = test::synthetic_config();
  c.rope_scaling.type = RopeScaling::Type::Linear;
  c.rope_scaling.factor = 4;
  const auto inv = rope_inverse_frequencies(c);
  EXPECT_DOUBLE_EQ(inv[1], 0.1 / 4);
  const RopeTables t = make_rope_tables(c, 10);
  ASSERT_EQ(t.cos.rows(), 10);
  ASSERT_EQ(t.cos.cols(), 4);
  EXPECT_FLOAT_EQ(t.cos(0, 2), 1.0f);
  EXPECT_NEAR(t.sin(7, 1), std::sin(7 * 0.025), 1e-7);
}

TEST(DecoderLayer, MatchesFloat64ReferenceWithCapturedInputs) {
  const ModelConfig c = test::synthetic_config(1);
  const ModelWeights w = test::synthetic_weights(c, 7);
  auto backend = make_backend("cpu");
  const int batch = 3, seqlen = 70;  // > 64: crosses an attention query block
  const auto ids = random_ids(batch * seqlen, c.vocab_size, 1);
  MatrixF hidden = embed(w, ids);
  const MatrixD hidden_d = hidden.cast<double>();
  LayerInputs captured;
  decoder_layer_forward(*backend, c, w.layers[0], make_rope_tables(c, seqlen), hidden, batch, seqlen, &captured);
  test::ReferenceInputs ref;
  const MatrixD expected = test::reference_decoder_layer(c, w.layers[0], hidden_d, batch, seqlen, &ref);
  EXPECT_LT(max_rel_diff(hidden.cast<double>(), expected), 2e-6);
  EXPECT_LT(max_rel_diff(captured.attn_in.cast<double>(), ref.attn_in), 2e-6);
  EXPECT_LT(max_rel_diff(captured.attn_out.cast<double>(), ref.attn_out), 2e-6);
  EXPECT_LT(max_rel_diff(captured.mlp_in.cast<double>(), ref.mlp_in), 2e-6);
  EXPECT_LT(max_rel_diff(captured.mlp_out.cast<double>(), ref.mlp_out), 2e-6);
  EXPECT_EQ(&captured.at(InputSite::MlpOut), &captured.mlp_out);
}

TEST(DecoderLayer, AttentionIsStableForHugeScores) {
  ModelConfig c = test::synthetic_config(1);
  ModelWeights w = test::synthetic_weights(c, 3);
  w.layers[0].linears[0].dense *= 1e4f;  // q scores ~1e4: a naive softmax overflows
  auto backend = make_backend("cpu");
  const int seqlen = 16;
  MatrixF hidden = embed(w, random_ids(seqlen, c.vocab_size, 2));
  decoder_layer_forward(*backend, c, w.layers[0], make_rope_tables(c, seqlen), hidden, 1, seqlen, nullptr);
  EXPECT_TRUE(hidden.allFinite());
}

TEST(Model, BatchOfSequencesEqualsEachAlone) {
  const ModelConfig c = test::synthetic_config(2);
  const ModelWeights w = test::synthetic_weights(c, 11);
  auto backend = make_backend("cpu");
  const int seqlen = 33;
  const auto ids = random_ids(2 * seqlen, c.vocab_size, 5);
  MatrixF both, first, second;
  model_logits(*backend, w, ids, 2, seqlen, both);
  model_logits(*backend, w, std::span(ids).first(seqlen), 1, seqlen, first);
  model_logits(*backend, w, std::span(ids).subspan(seqlen), 1, seqlen, second);
  ASSERT_EQ(both.rows(), 2 * seqlen);
  ASSERT_EQ(both.cols(), c.vocab_size);
  EXPECT_LT((both.topRows(seqlen) - first).cwiseAbs().maxCoeff(), 1e-5);
  EXPECT_LT((both.bottomRows(seqlen) - second).cwiseAbs().maxCoeff(), 1e-5);
  // Causality: a prefix's logits do not depend on later tokens.
  MatrixF prefix;
  model_logits(*backend, w, std::span(ids).first(10), 1, 10, prefix);
  EXPECT_LT((first.topRows(10) - prefix).cwiseAbs().maxCoeff(), 1e-5);
}

TEST(ModelWeights, CheckpointRoundTripAndLayerRange) {
  const ModelConfig c = test::synthetic_config(3);
  const ModelWeights w = test::synthetic_weights(c, 13);
  test::TempDir dir;
  test::write_checkpoint(w, dir.path().string());
  const ModelWeights all = load_model_weights(dir.path().string());
  ASSERT_EQ(all.layers.size(), 3u);
  EXPECT_EQ(all.embedding, w.embedding);
  EXPECT_EQ(all.lm_head, w.lm_head);
  EXPECT_EQ(all.layers[2].linears[1].dense, w.layers[2].linears[1].dense);
  EXPECT_EQ(all.layers[2].linears[1].bias, w.layers[2].linears[1].bias);
  EXPECT_EQ(all.layers[1].linears[3].bias.size(), 0);  // o_proj has no bias

  // A middle pipeline stage: layers [1, 2), no embedding, no head.
  const Checkpoint ckpt = Checkpoint::open(dir.path().string());
  const ModelWeights mid = load_model_weights(ckpt, c, 1, 2, false, false);
  EXPECT_EQ(mid.first_layer, 1);
  ASSERT_EQ(mid.layers.size(), 1u);
  EXPECT_EQ(mid.embedding.size(), 0);
  EXPECT_EQ(mid.layers[0].input_norm, w.layers[1].input_norm);
}

TEST(ModelWeights, WrongShapeIsAnInputErrorNamingTheTensor) {
  const ModelConfig c = test::synthetic_config(1);
  ModelWeights w = test::synthetic_weights(c, 17);
  w.layers[0].linears[6].dense = MatrixF::Zero(32, 47);  // down_proj: config implies 32 x 48
  test::TempDir dir;
  test::write_checkpoint(w, dir.path().string());
  try {
    load_model_weights(dir.path().string());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input);
    EXPECT_NE(std::string(e.what()).find("model.layers.0.mlp.down_proj.weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[32, 47]"), std::string::npos) << e.what();
  }
}

TEST(Embed, OutOfVocabularyIdIsAnInputError) {
  const ModelConfig c = test::synthetic_config(1);
  const ModelWeights w = test::synthetic_weights(c, 19);
  const std::vector<int32_t> ids{1, 64};
  try {
    embed(w, ids);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input);
  }
}

}  // namespace
}  // namespace amlq
