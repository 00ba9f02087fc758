#include "search/search.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <cmath>
#include <limits>
#include <random>

#include <fmt/format.h>

#include "core/error.h"

namespace amlq {
namespace {

Candidate cand(double bpw, double eps, int rank = 0, const char* spec = "4b-g128") {
  Candidate c;
  c.spec = QuantSpec::parse(spec);
  c.rank = rank;
  c.bpw = bpw;
  c.eps = eps;
  return c;
}

LayerMeasurement layer(std::string name, int rows, int cols, std::vector<Candidate> cands) {
  LayerMeasurement l;
  l.name = std::move(name);
  l.rows = rows;
  l.cols = cols;
  l.candidates = std::move(cands);
  return l;
}

ErrorKind kind_of(const std::function<void()>& f, std::string* message = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.kind();
  }
  return ErrorKind::Internal;  // "did not throw" - no test expects Internal
}

double total_numel(const MeasurementTable& t) {
  double n = 0;
  for (const auto& l : t) n += static_cast<double>(l.numel());
  return n;
}

struct BruteForce {
  bool feasible = false;
  double min_sum = std::numeric_limits<double>::infinity();
  double min_max = std::numeric_limits<double>::infinity();
};

// Every assignment; the same budget rule as the search (target + half the tolerance).
BruteForce brute_force(const MeasurementTable& t, double target) {
  BruteForce out;
  const double budget = (target + 0.5 * kBudgetToleranceBpw) * total_numel(t);
  std::vector<int> idx(t.size(), 0);
  for (;;) {
    double bits = 0, sum = 0, mx = 0;
    for (size_t l = 0; l < t.size(); ++l) {
      const auto& c = t[l].candidates[idx[l]];
      bits += c.bpw * static_cast<double>(t[l].numel());
      sum += c.eps;
      mx = std::max(mx, c.eps);
    }
    if (bits <= budget) {
      out.feasible = true;
      out.min_sum = std::min(out.min_sum, sum);
      out.min_max = std::min(out.min_max, mx);
    }
    size_t l = 0;
    while (l < t.size() && ++idx[l] == static_cast<int>(t[l].candidates.size())) idx[l++] = 0;
    if (l == t.size()) break;
  }
  return out;
}

// Layers of 8 x 8 weights whose candidates cost whole bits (bpw = bits / 64,
// exact in binary), so the min-sum DP runs at 1-bit resolution: exact.
MeasurementTable random_integral_table(std::mt19937& rng, int layers, int cands) {
  std::uniform_int_distribution<int> bits(64, 600);
  std::uniform_real_distribution<double> eps(0.0, 1.0);
  MeasurementTable t;
  for (int l = 0; l < layers; ++l) {
    std::vector<Candidate> cs;
    for (int c = 0; c < cands; ++c) cs.push_back(cand(bits(rng) / 64.0, std::round(eps(rng) * 1000) / 1000, c));
    t.push_back(layer(fmt::format("layers.{}", l), 8, 8, std::move(cs)));
  }
  return t;
}

// Mixed layer sizes and arbitrary real bpw values (the DP then rounds costs up).
MeasurementTable random_real_table(std::mt19937& rng, int layers, int cands) {
  std::uniform_real_distribution<double> bpw(1.5, 9.0), eps(1e-4, 1e-1);
  std::uniform_int_distribution<int> dim(1, 64);
  MeasurementTable t;
  for (int l = 0; l < layers; ++l) {
    std::vector<Candidate> cs;
    for (int c = 0; c < cands; ++c) cs.push_back(cand(bpw(rng), eps(rng), c));
    t.push_back(layer(fmt::format("l{}", l), 16 * dim(rng), 16 * dim(rng), std::move(cs)));
  }
  return t;
}

double min_avg_bpw(const MeasurementTable& t) {
  double bits = 0;
  for (const auto& l : t) {
    double m = std::numeric_limits<double>::infinity();
    for (const auto& c : l.candidates) m = std::min(m, c.bpw);
    bits += m * static_cast<double>(l.numel());
  }
  return bits / total_numel(t);
}

double max_avg_bpw(const MeasurementTable& t) {
  double bits = 0;
  for (const auto& l : t) {
    double m = 0;
    for (const auto& c : l.candidates) m = std::max(m, c.bpw);
    bits += m * static_cast<double>(l.numel());
  }
  return bits / total_numel(t);
}

void expect_consistent(const MeasurementTable& t, const SearchResult& r) {
  ASSERT_EQ(r.choice.size(), t.size());
  EXPECT_DOUBLE_EQ(r.achieved_bpw, average_bpw(t, r.choice));
  double sum = 0, mx = 0;
  for (size_t l = 0; l < t.size(); ++l) {
    sum += t[l].candidates[r.choice[l]].eps;
    mx = std::max(mx, t[l].candidates[r.choice[l]].eps);
  }
  EXPECT_DOUBLE_EQ(r.sum_eps, sum);
  EXPECT_DOUBLE_EQ(r.max_eps, mx);
}

TEST(Search, AverageBpwIsWeightedByNumel) {
  MeasurementTable t = {layer("a", 10, 10, {cand(2, 0.1), cand(4, 0.01)}),
                        layer("b", 30, 10, {cand(3, 0.1), cand(8, 0.0)})};
  EXPECT_DOUBLE_EQ(average_bpw(t, {0, 0}), (2 * 100 + 3 * 300) / 400.0);
  EXPECT_DOUBLE_EQ(average_bpw(t, {1, 1}), (4 * 100 + 8 * 300) / 400.0);
}

TEST(Search, NeverExceedsTheBudgetOnRandomTables) {
  for (unsigned seed = 0; seed < 60; ++seed) {
    std::mt19937 rng(seed);
    const MeasurementTable t = seed % 2 ? random_real_table(rng, 12, 7) : random_integral_table(rng, 12, 7);
    const double lo = min_avg_bpw(t), hi = max_avg_bpw(t);
    for (double frac : {0.0, 0.1, 0.37, 0.5, 0.9, 1.0, 1.5}) {
      const double target = lo + frac * (hi - lo);
      for (const std::string method : {"minmax", "minsum", "minsum-lagrange"}) {
        const SearchResult r = run_search(t, method, target);
        SCOPED_TRACE(::testing::Message() << "seed " << seed << " " << method << " target " << target);
        EXPECT_LE(r.achieved_bpw, target + kBudgetToleranceBpw);
        EXPECT_EQ(r.method, method);
        expect_consistent(t, r);
      }
    }
  }
}

TEST(Search, MinSumEqualsBruteForceOnIntegralTables) {
  int compared = 0;
  for (unsigned seed = 0; seed < 40; ++seed) {
    std::mt19937 rng(100 + seed);
    const MeasurementTable t = random_integral_table(rng, 5, 5);  // 3125 assignments
    const double lo = min_avg_bpw(t), hi = max_avg_bpw(t);
    for (double frac : {0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95}) {
      const double target = lo + frac * (hi - lo);
      const BruteForce bf = brute_force(t, target);
      ASSERT_TRUE(bf.feasible);
      const SearchResult dp = search_minsum(t, target);
      EXPECT_NEAR(dp.sum_eps, bf.min_sum, 1e-12) << "seed " << seed << " target " << target;
      EXPECT_LE(dp.achieved_bpw, target + kBudgetToleranceBpw);
      // Without the greedy pass the DP alone must already be optimal.
      const SearchResult raw = search_minsum(t, target, MinSumOptions{.grid = 65536, .greedy_upgrade = false, .compare_lagrange = false});
      EXPECT_NEAR(raw.sum_eps, bf.min_sum, 1e-12);
      // Lagrange is a heuristic: never better than the optimum, never over budget.
      const SearchResult lag = search_minsum_lagrange(t, target);
      EXPECT_GE(lag.sum_eps, bf.min_sum - 1e-12);
      EXPECT_LE(lag.achieved_bpw, target + kBudgetToleranceBpw);
      ++compared;
    }
  }
  EXPECT_EQ(compared, 280);
}

TEST(Search, MinSumOnACoarseGridStillFitsAndIsNoBetterThanOptimal) {
  for (unsigned seed = 0; seed < 30; ++seed) {
    std::mt19937 rng(500 + seed);
    const MeasurementTable t = random_real_table(rng, 5, 4);
    const double target = 0.5 * (min_avg_bpw(t) + max_avg_bpw(t));
    const BruteForce bf = brute_force(t, target);
    for (int grid : {1, 7, 64, 32768}) {
      const SearchResult r =
          search_minsum(t, target, MinSumOptions{.grid = grid, .greedy_upgrade = grid != 7, .compare_lagrange = false});
      EXPECT_LE(r.achieved_bpw, target + kBudgetToleranceBpw);
      EXPECT_GE(r.sum_eps, bf.min_sum - 1e-12);
    }
    // At a fine grid the DP (bucket rounding) plus greedy reaches the optimum here.
    EXPECT_NEAR(search_minsum(t, target).sum_eps, bf.min_sum, 1e-12) << "seed " << seed;
  }
}

TEST(Search, MinSumHandMadeTable) {
  // Budget 3 bpw over two equal layers: (2b, 4b) or (4b, 2b) or (3b, 3b).
  MeasurementTable t = {layer("a", 4, 16, {cand(2, 0.50), cand(3, 0.20), cand(4, 0.05)}),
                        layer("b", 4, 16, {cand(2, 0.30), cand(3, 0.10), cand(4, 0.08)})};
  // sums: (2,4)=0.58, (3,3)=0.30, (4,2)=0.35 -> (3,3).
  const SearchResult r = search_minsum(t, 3.0);
  EXPECT_EQ(r.choice, (std::vector<int>{1, 1}));
  EXPECT_DOUBLE_EQ(r.sum_eps, 0.30);
  EXPECT_DOUBLE_EQ(r.achieved_bpw, 3.0);  // exactly at the budget is allowed
  // minmax: (4,2) has max 0.30, (3,3) max 0.20 -> (3,3), threshold 0.20.
  const SearchResult m = search_minmax(t, 3.0);
  EXPECT_EQ(m.choice, (std::vector<int>{1, 1}));
  EXPECT_DOUBLE_EQ(m.threshold, 0.20);
}

TEST(Search, MinMaxReturnsTheSmallestFeasibleThreshold) {
  for (unsigned seed = 0; seed < 40; ++seed) {
    std::mt19937 rng(900 + seed);
    const MeasurementTable t = seed % 2 ? random_real_table(rng, 5, 5) : random_integral_table(rng, 5, 5);
    const double lo = min_avg_bpw(t), hi = max_avg_bpw(t);
    for (double frac : {0.0, 0.15, 0.4, 0.6, 0.85, 1.0}) {
      const double target = lo + frac * (hi - lo);
      const BruteForce bf = brute_force(t, target);
      const SearchResult r = search_minmax(t, target);
      EXPECT_DOUBLE_EQ(r.threshold, bf.min_max) << "seed " << seed << " target " << target;
      EXPECT_DOUBLE_EQ(r.max_eps, r.threshold);
      EXPECT_LE(r.achieved_bpw, target + kBudgetToleranceBpw);
      // Each layer's pick is its cheapest candidate under the threshold.
      for (size_t l = 0; l < t.size(); ++l)
        for (const auto& c : t[l].candidates) {
          if (c.eps <= r.threshold) {
            EXPECT_GE(c.bpw, t[l].candidates[r.choice[l]].bpw);
          }
        }
    }
  }
}

TEST(Search, InfeasibleBudgetIsAUsageErrorNamingTheMinimum) {
  MeasurementTable t = {layer("a", 4, 16, {cand(2.5, 0.5), cand(4, 0.1)}),
                        layer("b", 4, 16, {cand(3.5, 0.3), cand(8, 0.0)})};
  for (const std::string method : {"minmax", "minsum", "minsum-lagrange"}) {
    std::string msg;
    EXPECT_EQ(kind_of([&] { run_search(t, method, 2.9); }, &msg), ErrorKind::Usage) << method;
    EXPECT_NE(msg.find("3.000000"), std::string::npos) << msg;
    EXPECT_NE(msg.find("minimum"), std::string::npos) << msg;
    // The minimum itself is achievable.
    EXPECT_DOUBLE_EQ(run_search(t, method, 3.0).achieved_bpw, 3.0);
  }
  EXPECT_EQ(kind_of([&] { run_search(t, "minsum", -1); }), ErrorKind::Usage);
  EXPECT_EQ(kind_of([&] { run_search(t, "minsum", std::nan("")); }), ErrorKind::Usage);
}

TEST(Search, UniformPicksTheNamedConfiguration) {
  auto three = [](const char* name) {
    return layer(name, 8, 128,
                 {cand(4.15625, 0.01, 0, "4b-g128"), cand(4.15625 + 0.5, 0.005, 8, "4b-g128"),
                  cand(3.15625, 0.05, 0, "3b-g128"), cand(4.3125, 0.008, 0, "4b-g64")});
  };
  MeasurementTable t = {three("a"), three("b")};
  SearchResult r = run_search(t, "uniform:4b-g128", 0);
  EXPECT_EQ(r.choice, (std::vector<int>{0, 0}));
  EXPECT_EQ(r.method, "uniform:4b-g128");
  r = run_search(t, "uniform:4b-g128-r8", 3.0);  // over the target: a warning, not an error
  EXPECT_EQ(r.choice, (std::vector<int>{1, 1}));
  EXPECT_EQ(r.method, "uniform:4b-g128-r8");
  r = search_uniform(t, QuantSpec::parse("4b-g64"), 0);
  EXPECT_EQ(r.choice, (std::vector<int>{3, 3}));

  t[1].candidates.pop_back();  // layer b lacks 4b-g64
  std::string msg;
  EXPECT_EQ(kind_of([&] { run_search(t, "uniform:4b-g64", 0); }, &msg), ErrorKind::Usage);
  EXPECT_NE(msg.find("'b'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("measured: 4b-g128, 4b-g128-r8, 3b-g128"), std::string::npos) << msg;
  EXPECT_EQ(kind_of([&] { run_search(t, "uniform:4b-g128-r16", 0); }), ErrorKind::Usage);
  EXPECT_EQ(kind_of([&] { run_search(t, "uniform:banana", 0); }), ErrorKind::Usage);
  EXPECT_EQ(kind_of([&] { run_search(t, "maxmin", 3.0); }, &msg), ErrorKind::Usage);
  EXPECT_NE(msg.find("maxmin"), std::string::npos);
}

TEST(Search, ListedPlanPicksEveryNamedConfigurationInAnyOrder) {
  auto three = [](const char* name) {
    return layer(name, 8, 128,
                 {cand(4.15625, 0.01, 0, "4b-g128"), cand(4.15625 + 0.5, 0.005, 8, "4b-g128"),
                  cand(3.15625, 0.05, 0, "3b-g128")});
  };
  MeasurementTable t = {three("a"), three("b")};
  t[0].alpha = 2;
  t[1].alpha = 1;
  auto listed = [](const char* name, const char* spec, int rank) {
    return ListedChoice{name, QuantSpec::parse(spec), rank};
  };
  SearchResult r = search_listed(t, {listed("b", "3b-g128", 0), listed("a", "4b-g128", 8)}, "p.json");
  EXPECT_EQ(r.choice, (std::vector<int>{1, 2}));
  EXPECT_EQ(r.method, "plan:p.json");
  EXPECT_DOUBLE_EQ(r.achieved_bpw, (4.65625 + 3.15625) / 2);
  EXPECT_DOUBLE_EQ(r.predicted_delta_nll, 2 * 0.005 + 1 * 0.05);

  std::string msg;
  EXPECT_EQ(kind_of([&] { search_listed(t, {listed("a", "4b-g128", 0)}, "p.json"); }, &msg), ErrorKind::Input);
  EXPECT_NE(msg.find("does not list 'b'"), std::string::npos) << msg;
  EXPECT_EQ(kind_of([&] { search_listed(t, {listed("a", "4b-g128", 0), listed("a", "4b-g128", 0)}, "p.json"); }, &msg),
            ErrorKind::Input);
  EXPECT_NE(msg.find("twice"), std::string::npos) << msg;
  EXPECT_EQ(kind_of([&] { search_listed(t, {listed("c", "4b-g128", 0)}, "p.json"); }, &msg), ErrorKind::Input);
  EXPECT_NE(msg.find("'c'"), std::string::npos) << msg;
  EXPECT_EQ(kind_of([&] { search_listed(t, {listed("a", "3b-g128", 8), listed("b", "4b-g128", 0)}, "p.json"); }, &msg),
            ErrorKind::Usage);
  EXPECT_NE(msg.find("not measured at 3b-g128 rank 8"), std::string::npos) << msg;
}

TEST(Search, RejectsMalformedTables) {
  EXPECT_EQ(kind_of([] { search_minsum({}, 3.0); }), ErrorKind::Input);
  MeasurementTable t = {layer("a", 4, 16, {})};
  EXPECT_EQ(kind_of([&] { search_minmax(t, 3.0); }), ErrorKind::Input);
  t = {layer("a", 4, 16, {cand(3, std::nan(""))})};
  std::string msg;
  EXPECT_EQ(kind_of([&] { search_minsum(t, 3.0); }, &msg), ErrorKind::Input);
  EXPECT_NE(msg.find("'a'"), std::string::npos);
  t = {layer("a", 0, 16, {cand(3, 0.1)})};
  EXPECT_EQ(kind_of([&] { search_minsum(t, 3.0); }), ErrorKind::Input);
}

TEST(Search, ResultsAreDeterministicWithTies) {
  // All-equal candidates: every method must give the same, lowest-index answer each time.
  MeasurementTable t;
  for (int l = 0; l < 6; ++l) t.push_back(layer(fmt::format("l{}", l), 8, 8, {cand(3, 0.1), cand(3, 0.1), cand(3, 0.1)}));
  for (const std::string method : {"minmax", "minsum", "minsum-lagrange"}) {
    const SearchResult a = run_search(t, method, 3.0);
    const SearchResult b = run_search(t, method, 3.0);
    EXPECT_EQ(a.choice, b.choice);
    EXPECT_EQ(a.choice, std::vector<int>(6, 0)) << method;
  }
}

// Realistic scale: 80 decoder blocks x 7 linears, 60 candidates each.
TEST(Search, ModelScaleIsFastAndOrdered) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> jitter(0.5, 2.0);
  const int shapes[7][2] = {{8192, 8192}, {1024, 8192}, {1024, 8192}, {8192, 8192},
                            {28672, 8192}, {28672, 8192}, {8192, 28672}};
  MeasurementTable t;
  for (int block = 0; block < 80; ++block) {
    for (int j = 0; j < 7; ++j) {
      const int m = shapes[j][0], n = shapes[j][1];
      const double sensitivity = jitter(rng);
      std::vector<Candidate> cs;
      for (int bits : {2, 3, 4, 8})
        for (int g : {32, 64, 128})
          for (int rank : {0, 8, 32, 64, 128}) {
            const double bpw = bits + (16.0 + bits) / g + rank * (m + n) * 16.0 / (double(m) * n);
            const double eps = sensitivity * std::pow(4.0, -bits) * (1 + 32.0 / (256 - g)) / (1 + rank / 64.0);
            cs.push_back(cand(bpw, eps, rank));
          }
      t.push_back(layer(fmt::format("model.layers.{}.{}", block, j), m, n, std::move(cs)));
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  const SearchResult raw = search_minsum(t, 3.0, MinSumOptions{.compare_lagrange = false});
  const auto t1 = std::chrono::steady_clock::now();
  const SearchResult dp = search_minsum(t, 3.0);
  const SearchResult lag = search_minsum_lagrange(t, 3.0);
  const SearchResult mm = search_minmax(t, 3.0);
  const auto t2 = std::chrono::steady_clock::now();
  for (const auto* r : {&raw, &dp, &lag, &mm}) EXPECT_LE(r->achieved_bpw, 3.0 + kBudgetToleranceBpw);
  EXPECT_GT(dp.achieved_bpw, 2.99);  // the budget is used
  EXPECT_LE(dp.sum_eps, lag.sum_eps * (1 + 1e-9));
  EXPECT_LE(raw.sum_eps, lag.sum_eps * 1.001);  // DP + greedy alone is within 0.1% of the Lagrangian
  EXPECT_LE(dp.sum_eps, mm.sum_eps * (1 + 1e-9));
  EXPECT_LE(mm.max_eps, dp.max_eps * (1 + 1e-12));
  const double dp_s = std::chrono::duration<double>(t1 - t0).count();
  const double rest_s = std::chrono::duration<double>(t2 - t1).count();
  std::printf("560 layers x 60 candidates @3.0 bpw: DP+greedy %.3fs sum_eps %.6e (%.6f bpw) | minsum %.6e | "
              "lagrange %.6e | minmax sum %.6e max %.3e (other searches %.3fs)\n",
              dp_s, raw.sum_eps, raw.achieved_bpw, dp.sum_eps, lag.sum_eps, mm.sum_eps, mm.max_eps, rest_s);
  EXPECT_LT(dp_s, 20.0);
}

TEST(Search, FormatAllocationListsLayersAndTotals) {
  MeasurementTable t = {layer("model.layers.0.self_attn.q_proj", 4, 128, {cand(4.15625, 0.01, 8)}),
                        layer("model.layers.0.mlp.down_proj", 4, 128, {cand(3.15625, 0.03, 0, "3b-g128")})};
  const SearchResult r = search_minmax(t, 4.0);
  const std::string s = format_allocation(t, r);
  EXPECT_NE(s.find("model.layers.0.self_attn.q_proj  4b-g128"), std::string::npos) << s;
  EXPECT_NE(s.find("3b-g128"), std::string::npos);
  EXPECT_NE(s.find("average 3.656"), std::string::npos) << s;
  EXPECT_NE(s.find("threshold 3.0000e-02"), std::string::npos) << s;
  EXPECT_EQ(std::count(s.begin(), s.end(), '\n'), 4);
}

// Two equal-sized linears, two candidates each (2 or 4 bits); the budget (3 bpw)
// buys 4 bits for one of them. Unweighted, the one whose eps drops more gets it;
// weighted by alpha, the one whose alpha * eps drops more.
MeasurementTable sensitivity_table() {
  MeasurementTable t;
  t.push_back(layer("a", 16, 16, {cand(2, 0.10), cand(4, 0.01)}));  // saves 0.09 eps
  t.push_back(layer("b", 16, 16, {cand(2, 0.05), cand(4, 0.01)}));  // saves 0.04 eps
  return t;
}

TEST(Search, LossWeightedMinSumSpendsBitsWhereAlphaTimesEpsFalls) {
  MeasurementTable t = sensitivity_table();
  const SearchResult plain = run_search(t, "minsum-unweighted", 3.0);
  EXPECT_EQ(plain.choice, (std::vector<int>{1, 0}));
  EXPECT_EQ(plain.method, "minsum-unweighted");
  EXPECT_FALSE(plain.loss_weighted);
  EXPECT_EQ(plain.predicted_delta_nll, 0);  // no sensitivities: nothing to predict
  t[0].alpha = 0.1;  // a's error barely costs loss: 0.009 saved
  t[1].alpha = 1.0;  // b's does: 0.04 saved
  const SearchResult weighted = run_search(t, "minsum", 3.0);
  EXPECT_EQ(weighted.choice, (std::vector<int>{0, 1}));
  EXPECT_TRUE(weighted.loss_weighted);
  EXPECT_NEAR(weighted.predicted_delta_nll, 0.1 * 0.10 + 1.0 * 0.01, 1e-15);
  // Reported in plain eps, whatever the objective was.
  EXPECT_NEAR(weighted.sum_eps, 0.11, 1e-15);
  EXPECT_NEAR(weighted.max_eps, 0.10, 1e-15);
  // The unweighted choice is still there, and its prediction is worse.
  const SearchResult still_plain = run_search(t, "minsum-unweighted", 3.0);
  EXPECT_EQ(still_plain.choice, (std::vector<int>{1, 0}));
  EXPECT_GT(still_plain.predicted_delta_nll, weighted.predicted_delta_nll);
  // minmax-weighted thresholds alpha * eps: a at 2 bits (0.01) beats b at 2 bits (0.05).
  const SearchResult mm = run_search(t, "minmax-weighted", 3.0);
  EXPECT_EQ(mm.choice, (std::vector<int>{0, 1}));
  EXPECT_NEAR(mm.threshold, 0.01, 1e-15);
  EXPECT_EQ(run_search(t, "minmax", 3.0).choice, (std::vector<int>{1, 0}));
}

TEST(Search, WeightedMethodsWithoutSensitivitiesFallBackToPlainEps) {
  const MeasurementTable t = sensitivity_table();
  EXPECT_FALSE(has_sensitivities(t));
  const SearchResult r = run_search(t, "minsum", 3.0);
  EXPECT_EQ(r.choice, (std::vector<int>{1, 0}));
  EXPECT_FALSE(r.loss_weighted);
  EXPECT_EQ(r.method, "minsum");
  MeasurementTable partial = t;
  partial[0].alpha = 1;  // one linear without alpha is no table of sensitivities
  EXPECT_FALSE(has_sensitivities(partial));
  EXPECT_EQ(run_search(partial, "minmax-weighted", 3.0).choice, run_search(t, "minmax", 3.0).choice);
}

TEST(Search, LossWeightedMinSumMatchesBruteForceOnRandomTables) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int trial = 0; trial < 50; ++trial) {
    MeasurementTable t;
    for (int l = 0; l < 4; ++l) {
      std::vector<Candidate> cs;
      for (int b = 2; b <= 4; ++b) cs.push_back(cand(b, u(rng) / b));
      t.push_back(layer(fmt::format("l{}", l), 8, 8, cs));
      t.back().alpha = 0.01 + u(rng);
    }
    // Brute force over the 81 assignments of min sum alpha * eps under 3 bpw.
    double best = std::numeric_limits<double>::infinity();
    for (int code = 0; code < 81; ++code) {
      double bits = 0, loss = 0;
      for (int l = 0, c = code; l < 4; ++l, c /= 3) {
        bits += t[l].candidates[c % 3].bpw;
        loss += t[l].alpha * t[l].candidates[c % 3].eps;
      }
      if (bits <= 12 + 1e-9) best = std::min(best, loss);
    }
    const SearchResult r = run_search(t, "minsum", 3.0);
    EXPECT_NEAR(r.predicted_delta_nll, best, 1e-12) << "trial " << trial;
  }
}

// Four linears measured at 2b-g64, 3b-g64, 3b-g32 and 4b-g64 (rank 0) and at
// 3b-g64 with rank 8; 3b-g32 is dominated (costs more than 3b-g64, predicts
// more loss), so the uniform front is 2b-g64, 3b-g64, 4b-g64.
MeasurementTable front_table() {
  MeasurementTable t;
  const double alphas[4] = {0.5, 2.0, 1.0, 0.2};
  for (int l = 0; l < 4; ++l) {
    t.push_back(layer(fmt::format("l{}", l), 16, 16,
                      {cand(2.5, 0.08 + 0.01 * l, 0, "2b-g64"), cand(3.5, 0.02 + 0.003 * l, 0, "3b-g64"),
                       cand(4.0, 0.03, 0, "3b-g32"), cand(4.5, 0.005 + 0.001 * l, 0, "4b-g64"),
                       cand(4.5, 0.015, 8, "3b-g64")}));
    t.back().alpha = alphas[l];
  }
  return t;
}

TEST(Search, PlanAlternativesAreTheFrontNeighboursAndMinMaxAfterTheSearchsOwn) {
  const MeasurementTable t = front_table();
  // Asked: every linear at 3b-g64 (3.5 bpw): both alternatives differ from it.
  const SearchResult asked = run_search(t, "uniform:3b-g64", 0);
  const auto plans = plan_alternatives(t, asked, 4.0, {"front", "minmax"});
  ASSERT_EQ(plans.size(), 3u);
  EXPECT_EQ(plans[0].choice, asked.choice);
  EXPECT_EQ(plans[1].method, "front:3b-g64+4b-g64");
  EXPECT_EQ(plans[2].method, "minmax");
  EXPECT_EQ(plans[2].choice, run_search(t, "minmax", 4.0).choice);
  for (const auto& p : plans) {
    EXPECT_LE(p.achieved_bpw, 4.0 + kBudgetToleranceBpw) << p.method;
    EXPECT_NEAR(p.predicted_delta_nll, predicted_delta_nll(t, p.choice), 1e-15) << p.method;
  }
  // The front plan moves linears between the two neighbours only: two of the
  // four go up to 4b-g64 (4.0 bpw exactly), those with the largest alpha * drop.
  int up = 0;
  for (size_t l = 0; l < t.size(); ++l) {
    const auto& c = t[l].candidates[static_cast<size_t>(plans[1].choice[l])];
    EXPECT_EQ(c.rank, 0);
    EXPECT_TRUE(c.spec.label() == "3b-g64" || c.spec.label() == "4b-g64") << c.spec.label();
    up += c.spec.label() == "4b-g64" ? 1 : 0;
  }
  EXPECT_EQ(up, 2);
  EXPECT_EQ(plans[1].choice[1], 3);  // alpha 2.0: the largest loss saved
  EXPECT_NEAR(plans[1].achieved_bpw, 4.0, 1e-12);
  // No duplicates: unweighted min-sum moves up the linears whose eps drops
  // most (l2, l3), as minmax does here, so minmax is not listed again; asked
  // for minmax, it is not either.
  const SearchResult unweighted = run_search(t, "minsum-unweighted", 4.0);
  const auto from_unweighted = plan_alternatives(t, unweighted, 4.0, {"front", "minmax"});
  ASSERT_EQ(from_unweighted.size(), 2u);
  EXPECT_EQ(from_unweighted[1].method, "front:3b-g64+4b-g64");
  const auto from_minmax = plan_alternatives(t, run_search(t, "minmax", 4.0), 4.0, {"front", "minmax"});
  EXPECT_EQ(from_minmax.front().method, "minmax");
  for (size_t i = 1; i < from_minmax.size(); ++i) {
    EXPECT_NE(from_minmax[i].method, "minmax");
    EXPECT_NE(from_minmax[i].choice, from_minmax[0].choice);
  }
  // At or above the top of the front: the top uniform configuration itself.
  SearchResult all_3b = run_search(t, "uniform:3b-g64", 0);
  const auto top = plan_alternatives(t, all_3b, 4.5, {"front", "minmax"});
  EXPECT_TRUE(std::any_of(top.begin(), top.end(), [](const SearchResult& p) { return p.method == "uniform:4b-g64"; }));
  // A plan equal to the asked one is not listed twice.
  const auto same = plan_alternatives(t, run_search(t, "uniform:4b-g64", 0), 4.5, {"front", "minmax"});
  EXPECT_TRUE(std::none_of(same.begin() + 1, same.end(), [&](const SearchResult& p) {
    return p.choice == same.front().choice;
  }));
}

TEST(Search, ValidatedPlansAreAnyBudgetedSearchInTheOrderListed) {
  const MeasurementTable t = front_table();
  const SearchResult asked = run_search(t, "uniform:3b-g64", 0);
  const auto plans = plan_alternatives(t, asked, 4.0, parse_validated_plans("minmax-weighted,minsum-unweighted,front"));
  // Each listed plan is there, in the order listed, unless an earlier one has
  // the same choice (minsum-unweighted and minmax-weighted may coincide here).
  ASSERT_GE(plans.size(), 3u);
  EXPECT_EQ(plans[0].choice, asked.choice);
  EXPECT_EQ(plans[1].method, "minmax-weighted");
  EXPECT_EQ(plans[1].choice, run_search(t, "minmax-weighted", 4.0).choice);
  // The front plan is listed, or equals a plan listed before it.
  const std::vector<SearchResult> front_only = plan_alternatives(t, asked, 4.0, {"front"});
  ASSERT_EQ(front_only.size(), 2u);
  EXPECT_EQ(front_only[1].method, "front:3b-g64+4b-g64");
  EXPECT_TRUE(std::any_of(plans.begin(), plans.end(),
                          [&](const SearchResult& p) { return p.choice == front_only[1].choice; }));
  for (size_t i = 0; i < plans.size(); ++i)
    for (size_t j = 0; j < i; ++j) EXPECT_NE(plans[i].choice, plans[j].choice) << i << " " << j;
  for (const auto& p : plans) {
    EXPECT_LE(p.achieved_bpw, 4.0 + kBudgetToleranceBpw) << p.method;
    EXPECT_NEAR(p.predicted_delta_nll, predicted_delta_nll(t, p.choice), 1e-15) << p.method;
  }
  // The asked method is not run again.
  const SearchResult weighted_minmax = run_search(t, "minmax-weighted", 4.0);
  const auto again = plan_alternatives(t, weighted_minmax, 4.0, parse_validated_plans("minmax-weighted"));
  EXPECT_EQ(again.size(), 1u);
  // An empty list validates nothing but the asked plan.
  EXPECT_EQ(plan_alternatives(t, asked, 4.0, parse_validated_plans("")).size(), 1u);
  EXPECT_EQ(parse_validated_plans(std::string(kDefaultValidatedPlans)),
            (std::vector<std::string>{"front", "minmax"}));
  for (const char* bad : {"minmix", "front,front", "front,", "uniform:3b-g64"}) {
    try {
      parse_validated_plans(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Usage) << bad;
      EXPECT_NE(std::string(e.what()).find("--validate-plans"), std::string::npos) << e.what();
    }
  }
}

TEST(Search, OnlyBudgetedSearchesHaveAlternatives) {
  EXPECT_TRUE(is_budgeted_search("minsum"));
  EXPECT_TRUE(is_budgeted_search("minmax-weighted"));
  EXPECT_FALSE(is_budgeted_search("uniform:4b-g128"));
  EXPECT_FALSE(is_budgeted_search("plan:x.json"));
  EXPECT_EQ(max_validated_plans("minsum", {"front", "minmax"}), 3);
  EXPECT_EQ(max_validated_plans("minmax", {"front", "minmax"}), 2);
  EXPECT_EQ(max_validated_plans("uniform:3b-g64", {"front", "minmax"}), 1);
  EXPECT_EQ(max_validated_plans("minsum", {"front", "minmax", "minmax-weighted", "minsum"}), 4);
}

}  // namespace
}  // namespace amlq
