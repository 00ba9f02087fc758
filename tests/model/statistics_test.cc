#include <gtest/gtest.h>

#include <random>

#include "backend/backend.h"
#include "model/layer_statistics.h"
#include "model/sequential.h"
#include "tests/model/synthetic_model.h"

namespace amlq {
namespace {

std::vector<std::vector<int32_t>> random_samples(int n, int seqlen, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<int32_t>> samples(static_cast<size_t>(n), std::vector<int32_t>(static_cast<size_t>(seqlen)));
  for (auto& s : samples)
    for (auto& id : s) id = static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab));
  return samples;
}

struct Fixture {
  ModelConfig config = test::synthetic_config(2);
  ModelWeights weights = test::synthetic_weights(config, 23);
  std::unique_ptr<Backend> backend = make_backend("cpu");
  int num_samples = 5, seqlen = 12;
  std::vector<std::vector<int32_t>> samples = random_samples(num_samples, seqlen, config.vocab_size, 4);
};

TEST(LayerStatistics, HessianFromHooksIsTwoOverNXtX) {
  Fixture f;
  const MatrixF inputs = embed_samples(f.weights, f.samples);
  const RopeTables rope = make_rope_tables(f.config, f.seqlen);
  SequentialOptions options;
  options.batch = 2;
  options.samples_per_block = 2;
  LayerStatistics stats(f.config, options.samples_per_block);
  MatrixF outputs;
  run_layer_over_samples(*f.backend, f.config, f.weights.layers[0], rope, inputs, f.num_samples, f.seqlen, options,
                         &stats, outputs);
  stats.finish();

  // The same layer on all samples at once, capturing its inputs explicitly.
  MatrixF hidden = inputs;
  LayerInputs captured;
  decoder_layer_forward(*f.backend, f.config, f.weights.layers[0], rope, hidden, f.num_samples, f.seqlen, &captured);
  EXPECT_LT((hidden - outputs).cwiseAbs().maxCoeff(), 1e-5);
  for (int s = 0; s < kNumInputSites; ++s) {
    const auto site = static_cast<InputSite>(s);
    const MatrixD x = captured.at(site).cast<double>();
    const double n = static_cast<double>(x.rows());
    const MatrixD expected_h = (2.0 / n) * x.transpose() * x;
    const VectorD expected_s = x.cwiseAbs().colwise().sum().transpose() / n;
    ASSERT_EQ(stats.site(site).tokens(), f.num_samples * f.seqlen);
    ASSERT_EQ(stats.site(site).dim(), input_site_dim(f.config, site));
    const MatrixD h = stats.site(site).hessian();
    EXPECT_LT((h - expected_h).cwiseAbs().maxCoeff() / expected_h.cwiseAbs().maxCoeff(), 1e-5)
        << input_site_name(site);
    EXPECT_LT((stats.site(site).act_scale() - expected_s).cwiseAbs().maxCoeff() / expected_s.maxCoeff(), 1e-5)
        << input_site_name(site);
  }
}

TEST(LayerStatistics, BatchingDoesNotChangeTheHessian) {
  Fixture f;
  const MatrixF inputs = embed_samples(f.weights, f.samples);
  const RopeTables rope = make_rope_tables(f.config, f.seqlen);
  std::vector<MatrixD> per_batching;
  for (int batch : {1, 3, 5}) {
    SequentialOptions options;
    options.batch = batch;
    options.samples_per_block = 2;
    LayerStatistics stats(f.config, options.samples_per_block);
    MatrixF outputs;
    run_layer_over_samples(*f.backend, f.config, f.weights.layers[1], rope, inputs, f.num_samples, f.seqlen, options,
                           &stats, outputs);
    stats.finish();
    per_batching.push_back(stats.site(InputSite::MlpOut).hessian());
  }
  const double scale = per_batching[0].cwiseAbs().maxCoeff();
  EXPECT_LT((per_batching[1] - per_batching[0]).cwiseAbs().maxCoeff() / scale, 1e-12);
  EXPECT_LT((per_batching[2] - per_batching[0]).cwiseAbs().maxCoeff() / scale, 1e-12);
}

TEST(Sequential, ReplacedLayersFeedTheNextLayer) {
  Fixture f;
  MatrixF hidden = embed_samples(f.weights, f.samples);
  const MatrixF embedded = hidden;
  ModelWeights weights = f.weights;
  std::vector<int> seen;
  SequentialOptions options;
  options.batch = 2;
  options.samples_per_block = 1;
  run_sequential(*f.backend, weights, hidden, f.num_samples, f.seqlen, options,
                 [&](int layer, LayerStatistics& stats) -> std::optional<DecoderLayerWeights> {
                   seen.push_back(layer);
                   EXPECT_EQ(stats.site(InputSite::AttnIn).tokens(), f.num_samples * f.seqlen);
                   if (layer != 0) return std::nullopt;
                   DecoderLayerWeights replaced = weights.layers[0];
                   for (auto& l : replaced.linears) l.dense *= 0.5f;
                   return replaced;
                 });
  EXPECT_EQ(seen, (std::vector<int>{0, 1}));
  EXPECT_EQ(weights.layers[0].linears[4].dense, f.weights.layers[0].linears[4].dense * 0.5f);

  // The same as running the replaced model straight through.
  MatrixF expected = embedded;
  forward_layers(*f.backend, weights, make_rope_tables(f.config, f.seqlen), expected, f.num_samples, f.seqlen);
  EXPECT_LT((hidden - expected).cwiseAbs().maxCoeff(), 1e-5);
  MatrixF original = embedded;
  forward_layers(*f.backend, f.weights, make_rope_tables(f.config, f.seqlen), original, f.num_samples, f.seqlen);
  EXPECT_GT((hidden - original).cwiseAbs().maxCoeff(), 1e-2);
}

}  // namespace
}  // namespace amlq
