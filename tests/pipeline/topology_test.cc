#include <gtest/gtest.h>

#include "core/error.h"
#include "io/model_config.h"
#include "pipeline/topology.h"

namespace amlq {
namespace {

ModelConfig config_with_layers(int layers, bool tied) {
  ModelConfig c;
  c.hidden_size = 64;
  c.intermediate_size = 172;
  c.num_layers = layers;
  c.num_heads = 8;
  c.num_kv_heads = 4;
  c.head_dim = 8;
  c.vocab_size = 512;
  c.tie_word_embeddings = tied;
  return c;
}

TEST(Topology, BlocksAreContiguousNonEmptyAndCoverAllLayers) {
  const auto c = config_with_layers(13, false);
  for (int stages = 1; stages <= 13; ++stages) {
    const auto blocks = balance_layers(c, stages, 0);
    ASSERT_EQ(static_cast<int>(blocks.size()), stages);
    int next = 0;
    for (const auto& b : blocks) {
      EXPECT_EQ(b.first, next);
      EXPECT_GT(b.size(), 0);
      next = b.end;
    }
    EXPECT_EQ(next, 13);
  }
}

TEST(Topology, EmbeddingAndHeadCountTowardsTheEndStages) {
  // stories260K: the embedding is worth ~0.7 layers, so stage 0 gets fewer layers.
  const auto c = config_with_layers(5, true);
  const auto blocks = balance_layers(c, 3, 0);
  EXPECT_EQ(blocks[0].size(), 1);
  EXPECT_EQ(blocks[1].size() + blocks[2].size(), 4);
}

TEST(Topology, LayersPerRankOverrides) {
  const auto c = config_with_layers(10, false);
  const auto blocks = balance_layers(c, 3, 4);
  EXPECT_EQ(blocks[0].size(), 4);
  EXPECT_EQ(blocks[1].size(), 4);
  EXPECT_EQ(blocks[2].size(), 2);
  EXPECT_THROW(balance_layers(c, 3, 5), Error);  // the third stage would be empty
}

TEST(Topology, RanksMapToReplicaAndStage) {
  const auto c = config_with_layers(8, false);
  const auto t = make_topology(c, 5, 6, 2, 0);  // 2 replicas x 3 stages
  EXPECT_EQ(t.stages, 3);
  EXPECT_EQ(t.replica, 1);
  EXPECT_EQ(t.stage, 2);
  EXPECT_EQ(t.rank_of(1, 2), 5);
  EXPECT_TRUE(t.last_stage());
  EXPECT_THROW(make_topology(c, 0, 5, 2, 0), Error);   // 5 ranks, 2 replicas
  EXPECT_THROW(make_topology(c, 0, 9, 1, 0), Error);   // 9 stages, 8 layers
}

TEST(Topology, ReplicaSharesAreWholeBatchesAndBlocks) {
  EXPECT_EQ(replica_samples(128, 1, 0, 8, 8).size(), 128);
  const auto second = replica_samples(128, 2, 1, 8, 8);
  EXPECT_EQ(second.first, 64);
  EXPECT_EQ(second.end, 128);
  try {
    replica_samples(100, 2, 0, 8, 8);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Usage);
    EXPECT_NE(std::string(e.what()).find("multiple of 16"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace amlq
