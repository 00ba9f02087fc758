#include <gtest/gtest.h>

#include <set>

#include "backend/backend.h"
#include "pipeline/measure_site.h"
#include "search/recipe_space.h"
#include "tests/quant/quant_test_util.h"

namespace amlq {
namespace {

double rel(double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-300); }

RecipeSpace small_space(const char* extra = "") {
  return parse_recipe_space(std::string("name = \"t\"\nranks = [0, 4, 16, 64]\nbits = [2, 3, 4]\ngroups = [32, 64]\n"
                                        "mixes = [\"25%4b-g32+75%3b-g64\", \"3b-g32-noact\"]\n") +
                                extra,
                            "test");
}

struct Site {
  SiteStatistics stats;
  std::vector<MatrixF> weights;
  std::vector<SiteLinear> linears() const {
    std::vector<SiteLinear> out;
    for (size_t i = 0; i < weights.size(); ++i)
      out.push_back({"model.layers.0.self_attn." + std::to_string(i), &weights[i]});
    return out;
  }
};

Site make_site(int n, std::vector<int> rows, uint32_t seed) {
  Site s;
  const MatrixF x = test::realistic_inputs(3 * n, n, seed);
  s.stats.hessian = test::hessian_of(x);
  s.stats.act_scale = x.cast<double>().cwiseAbs().colwise().mean().transpose();
  for (size_t i = 0; i < rows.size(); ++i) s.weights.push_back(test::random_weights(rows[i], n, seed + 1 + static_cast<uint32_t>(i)));
  return s;
}

void expect_matches_reference(const std::vector<LayerMeasurement>& got, Backend& backend,
                              const QuantizeOptions& options, const Site& site, const RecipeSpace& space,
                              double tolerance, const std::string& what) {
  const auto linears = site.linears();
  ASSERT_EQ(got.size(), linears.size());
  for (size_t l = 0; l < linears.size(); ++l) {
    const LayerMeasurement want =
        measure_linear_reference(backend, options, linears[l].name, *linears[l].weight, site.stats, space);
    ASSERT_EQ(got[l].name, want.name);
    ASSERT_EQ(got[l].candidates.size(), want.candidates.size()) << what;
    for (size_t c = 0; c < want.candidates.size(); ++c) {
      const Candidate& a = got[l].candidates[c];
      const Candidate& b = want.candidates[c];
      ASSERT_EQ(a.spec, b.spec) << what;
      ASSERT_EQ(a.rank, b.rank) << what;
      EXPECT_EQ(a.bpw, b.bpw) << what;
      EXPECT_LT(rel(a.eps, b.eps), tolerance) << what << " " << a.spec.label() << " r" << a.rank;
      EXPECT_EQ(a.eps_stderr, 0.0);
    }
  }
}

TEST(MeasureSite, MatchesTheReferencePathForEveryLowRankMethod) {
  const auto backend = make_backend("cpu");
  const Site site = make_site(128, {96, 40, 200}, 1);  // q/k/v-like: one Hessian, three shapes
  const RecipeSpace space = small_space();
  for (LowRankMethod method : {LowRankMethod::Whiten, LowRankMethod::None, LowRankMethod::Svd, LowRankMethod::L2qer}) {
    for (bool rtn : {false, true}) {
      QuantizeOptions options;
      options.lowrank = method;
      options.rtn = rtn;
      options.threads = 2;
      const auto got = measure_site(*backend, options, site.stats, site.linears(), space);
      expect_matches_reference(got, *backend, options, site, space, 1e-9,
                               lowrank_method_name(method) + (rtn ? " rtn" : " gptq"));
    }
  }
}

TEST(MeasureSite, ResultsDoNotDependOnThreads) {
  const auto backend = make_backend("cpu");
  const Site site = make_site(96, {64, 64, 130}, 2);
  const RecipeSpace space = small_space();
  QuantizeOptions options;
  options.threads = 1;
  const auto one = measure_site(*backend, options, site.stats, site.linears(), space);
  options.threads = 3;
  EXPECT_EQ(measure_site(*backend, options, site.stats, site.linears(), space), one);
  options.measure_rows = 0.5;
  options.measure_rows_min = 1;  // these linears are far smaller than the default floor
  options.threads = 1;
  const auto sampled_one = measure_site(*backend, options, site.stats, site.linears(), space);
  options.threads = 3;
  EXPECT_EQ(measure_site(*backend, options, site.stats, site.linears(), space), sampled_one);
}

TEST(MeasureSite, MeasuredRowsAreASeededSample) {
  EXPECT_TRUE(measured_rows("a", 100, 1.0).empty());
  const auto rows = measured_rows("model.layers.1.mlp.up_proj", 1000, 0.25);
  ASSERT_EQ(rows.size(), 250u);
  EXPECT_TRUE(std::is_sorted(rows.begin(), rows.end()));
  EXPECT_EQ(std::set<int>(rows.begin(), rows.end()).size(), 250u);
  EXPECT_EQ(rows, measured_rows("model.layers.1.mlp.up_proj", 1000, 0.25));
  EXPECT_NE(rows, measured_rows("model.layers.2.mlp.up_proj", 1000, 0.25));
  EXPECT_EQ(measured_rows("x", 10, 0.01).size(), 1u);
  EXPECT_TRUE(measured_rows("x", 3, 0.99).empty());  // ceil(2.97) = 3 = every row
  // The floor: never fewer than min_rows, and every row (no sampling) when that is all of them.
  EXPECT_EQ(measured_rows("y", 1000, 0.1, 256).size(), 256u);
  EXPECT_EQ(measured_rows("y", 4000, 0.1, 256).size(), 400u);
  EXPECT_TRUE(measured_rows("y", 200, 0.25, 256).empty());
  EXPECT_EQ(measured_rows("y", 1000, 0.1, 256), measured_rows("y", 1000, 0.256, 1)) << "same sample, same seed";
}

TEST(MeasureSite, RowSamplingIsUnbiasedWithinItsStandardError) {
  const auto backend = make_backend("cpu");
  const Site site = make_site(128, {1024}, 3);
  QuantizeOptions options;
  options.lowrank = LowRankMethod::None;
  const RecipeSpace space = small_space();
  const auto full = measure_site(*backend, options, site.stats, site.linears(), space);
  options.measure_rows = 0.25;
  options.measure_rows_min = 1;
  const auto sampled = measure_site(*backend, options, site.stats, site.linears(), space);
  ASSERT_EQ(full[0].candidates.size(), sampled[0].candidates.size());
  double chi2 = 0;
  for (size_t c = 0; c < full[0].candidates.size(); ++c) {
    const Candidate& f = full[0].candidates[c];
    const Candidate& s = sampled[0].candidates[c];
    ASSERT_GT(s.eps_stderr, 0);
    EXPECT_LT(s.eps_stderr, 0.2 * s.eps);  // 256 rows: a few percent
    const double z = (s.eps - f.eps) / s.eps_stderr;
    EXPECT_LT(std::abs(z), 4.5) << s.spec.label();
    chi2 += z * z;
  }
  // The candidates share one row sample, so they are correlated; still no systematic bias.
  EXPECT_LT(chi2 / static_cast<double>(full[0].candidates.size()), 6.0);
}

TEST(MeasureSite, SampledRanksStayBelowTheSampledRows) {
  const auto backend = make_backend("cpu");
  const Site site = make_site(96, {40}, 4);
  QuantizeOptions options;
  options.measure_rows = 0.25;  // 10 rows: ranks 16 and 64 cannot be told apart from 10
  options.measure_rows_min = 1;
  const auto got = measure_site(*backend, options, site.stats, site.linears(), small_space());
  for (const Candidate& c : got[0].candidates) {
    EXPECT_TRUE(std::isfinite(c.eps));
    EXPECT_GE(c.eps, 0);
  }
}

}  // namespace
}  // namespace amlq
