// amlq plan's library side: the cluster plan uses predict_resources unchanged,
// the verdict's fixes are real (planning with them fits), bad layouts are usage
// errors, rates files are parsed strictly, the time model follows the options.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/error.h"
#include "io/model_config.h"
#include "pipeline/cluster_plan.h"
#include "pipeline/op_rates.h"
#include "pipeline/resources.h"
#include "pipeline/time_model.h"
#include "pipeline/topology.h"
#include "search/recipe_space.h"

namespace amlq {
namespace {

ModelConfig config_of(int hidden, int intermediate, int layers, int heads, int kv_heads, int vocab) {
  ModelConfig c;
  c.hidden_size = hidden;
  c.intermediate_size = intermediate;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = hidden / heads;
  c.vocab_size = vocab;
  return c;
}

// Round numbers, so that expectations do not depend on this machine.
OpRates test_rates(bool device) {
  const std::string host = R"(
machine = "test"
threads = 2
gemm_f32_gflops_1t = 50
gemm_f32_gflops_all = 90
gemm_f64_gflops_1t = 25
cholesky_f64_gflops_1t = 15
trinv_f64_gflops_1t = 10
gptq_update_gflops_1t = 40
gptq_columns_gweights_1t = 0.2
eigensolver_f64_gflops_1t = 2
memory_gbs_1t = 10
memory_gbs_all = 15
disk_write_gbs = 1
disk_read_gbs = 2
network_gbs = 10
)";
  OpRates r = parse_op_rates(host, "host.toml");
  if (device)
    r = parse_op_rates(R"(
gpu_gemm_f32_gflops = 50000
gpu_gemm_f64_gflops = 50000
gpu_potrf_f64_gflops = 20000
gpu_syevd_f64_gflops = 800
gpu_memory_gbs = 3000
gpu_host_copy_gbs = 20
gpu_call_us = 20
)",
                       "device.toml", r);
  return r;
}

PlanInputs inputs_for(int np, int threads) {
  PlanInputs in;
  in.job.calib_spec.num_samples = 32;
  in.job.calib_spec.seqlen = 128;
  in.job.batch = 4;
  in.job.samples_per_block = 4;
  in.job.threads = threads;
  in.job.recipes = "fast";
  in.space = measured_space(in.job);
  in.cluster.np = np;
  in.cluster.ranks_per_node = np;
  return in;
}

TEST(MeasuredSpace, UniformMeasuresOneCandidateAndRtnIsPlain) {
  QuantizeOptions o;
  o.search = "uniform:3b-g32-r8";
  RecipeSpace space = measured_space(o);
  ASSERT_EQ(space.specs.size(), 1u);
  EXPECT_TRUE(space.specs[0].act_order);
  EXPECT_EQ(space.ranks, (std::vector<int>{0, 8}));
  EXPECT_EQ(resolved_search(o), "uniform:3b-g32-r8");
  // RTN: no act-order, no static groups, so "3b-g32" names the plain candidate.
  o.rtn = true;
  space = measured_space(o);
  ASSERT_EQ(space.specs.size(), 1u);
  EXPECT_FALSE(space.specs[0].act_order);
  EXPECT_EQ(resolved_search(o), "uniform:" + space.specs[0].label() + "-r8");
  EXPECT_EQ(resolved_search(o), "uniform:3b-g32-noact-r8");
  // A recipe space: act-ordered and static variants collapse into one plain spec.
  o.search = "minsum";
  o.recipes = "default";
  const RecipeSpace gptq_space = load_recipe_space("default");
  space = measured_space(o);
  EXPECT_LE(space.specs.size(), gptq_space.specs.size());
  for (const QuantSpec& spec : space.specs) {
    EXPECT_FALSE(spec.act_order) << spec.label();
    EXPECT_FALSE(spec.static_groups) << spec.label();
    EXPECT_EQ(std::count(space.specs.begin(), space.specs.end(), spec), 1) << spec.label();
  }
  EXPECT_EQ(resolved_search(o), "minsum");
}

TEST(ClusterPlan, UsesPredictResourcesUnchanged) {
  const ModelConfig c = config_of(256, 688, 6, 8, 4, 1000);
  const PlanInputs in = inputs_for(3, 2);
  const ClusterPlan plan = make_plan(c, in, test_rates(false), false);
  const auto direct = predict_resources(c, resource_inputs(in.job, 3, in.weight_bytes, in.space));
  ASSERT_EQ(plan.ranks.size(), direct.size());
  int64_t node = 0;
  for (size_t i = 0; i < direct.size(); ++i) {
    EXPECT_EQ(plan.ranks[i].peak_host, direct[i].peak_host) << "rank " << i;
    EXPECT_EQ(plan.ranks[i].peak_phase, direct[i].peak_phase);
    EXPECT_EQ(plan.ranks[i].work_dir_bytes, direct[i].work_dir_bytes);
    EXPECT_EQ(plan.ranks[i].bytes_sent, direct[i].bytes_sent);
    node += direct[i].peak_host;
  }
  ASSERT_EQ(plan.nodes, 1);
  EXPECT_EQ(plan.node_host[0], node);  // three ranks on one node
}

// The layers each rank gets are the run's own split (make_topology): contiguous
// blocks covering every layer once per replica, replicas repeating the stages.
TEST(ClusterPlan, LayerSplitIsTheRunsTopology) {
  const ModelConfig c = config_of(256, 688, 10, 8, 4, 1000);
  PlanInputs in = inputs_for(6, 1);
  in.job.replicas = 2;  // 2 replicas x 3 stages
  in.job.calib_spec.num_samples = 32;
  const ClusterPlan plan = make_plan(c, in, test_rates(false), false);
  ASSERT_EQ(plan.stages, 3);
  ASSERT_EQ(plan.ranks.size(), 6u);
  int next = 0;
  for (int rank = 0; rank < 6; ++rank) {
    const auto& r = plan.ranks[static_cast<size_t>(rank)];
    const Topology t = make_topology(c, rank, 6, 2, 0);
    EXPECT_EQ(r.layers.first, t.my_layers().first) << "rank " << rank;
    EXPECT_EQ(r.layers.end, t.my_layers().end) << "rank " << rank;
    EXPECT_EQ(r.stage, rank % 3);
    EXPECT_EQ(r.replica, rank / 3);
    EXPECT_EQ(r.samples, 16) << "each replica calibrates half the samples";
    if (r.replica == 0) {
      EXPECT_EQ(r.layers.first, next);
      EXPECT_GE(r.layers.size(), 3);
      EXPECT_LE(r.layers.size(), 4);
      next = r.layers.end;
    } else {
      EXPECT_EQ(r.layers.first, plan.ranks[static_cast<size_t>(rank - 3)].layers.first);
    }
  }
  EXPECT_EQ(next, 10);
  // --layers-per-rank forces the blocks, as in the run.
  in.cluster.np = 3;
  in.job.replicas = 1;
  in.job.layers_per_rank = 2;
  const ClusterPlan forced = make_plan(c, in, test_rates(false), false);
  EXPECT_EQ(forced.ranks[0].layers.size(), 2);
  EXPECT_EQ(forced.ranks[1].layers.size(), 2);
  EXPECT_EQ(forced.ranks[2].layers.size(), 6);
}

TEST(ClusterPlan, TooLittleHostMemoryIsFixedByAnOptionThatReallyFits) {
  const ModelConfig c = config_of(512, 1376, 8, 8, 8, 2000);
  PlanInputs in = inputs_for(1, 4);
  in.job.sensitivity_windows = 0;  // a measure-bound peak: its workers are what --threads trims
  const OpRates rates = test_rates(false);
  const ClusterPlan roomy = make_plan(c, in, rates, false);
  // Just below what it needs: fewer workers (or more ranks) must make it fit.
  in.cluster.host_mem = roomy.node_host[0] - 1;
  const ClusterPlan tight = make_plan(c, in, rates);
  ASSERT_FALSE(tight.fits());
  ASSERT_FALSE(tight.fixes.empty());
  bool tried = false;
  for (const auto& fix : tight.fixes) {
    if (fix.options.rfind("--threads ", 0) != 0) continue;
    PlanInputs fixed = in;
    fixed.job.threads = std::stoi(fix.options.substr(10));
    EXPECT_LT(fixed.job.threads, in.job.threads);
    EXPECT_TRUE(make_plan(c, fixed, rates, false).fits()) << fix.options;
    tried = true;
  }
  EXPECT_TRUE(tried) << "no --threads fix offered";
  // The hardware fix names what the plan needs, rounded up to a GiB.
  const auto hw = std::find_if(tight.fixes.begin(), tight.fixes.end(),
                               [](const PlanFix& f) { return f.options.rfind("--host-mem", 0) == 0; });
  ASSERT_NE(hw, tight.fixes.end());
  EXPECT_EQ(hw->options, "--host-mem 1GiB");
}

// Memory turns (pipeline/memory_turns.h): the ranks of a host walk their
// statistics one stage at a time, so the host holds one stage group at its peak
// while the lower stages wait (done) and the higher ones have not started.
TEST(ClusterPlan, MemoryTurnsLetRanksThatDoNotFitAtOnceShareAHost) {
  const ModelConfig c = config_of(512, 1376, 8, 8, 8, 2000);
  PlanInputs in = inputs_for(2, 1);
  const OpRates rates = test_rates(false);
  const ClusterPlan roomy = make_plan(c, in, rates, false);
  ASSERT_FALSE(roomy.node_turns[0]) << "auto takes no turns where the ranks fit";
  const auto& r0 = roomy.ranks[0];
  const auto& r1 = roomy.ranks[1];
  ASSERT_EQ(roomy.node_host[0], r0.peak_host + r1.peak_host);
  // Stage 0 walks while stage 1 waits (before its turn); then stage 1 walks while stage 0 is done.
  const int64_t turns = std::max(r0.peak_host + r1.before_turn, r0.waiting + r1.peak_host);
  EXPECT_LT(turns, roomy.node_host[0]);
  EXPECT_GT(r0.before_turn, r0.waiting) << "stage 0 feeds stage 1 before its turn (an FP layer in float32)";
  EXPECT_EQ(r1.before_turn, r1.waiting) << "the last stage feeds nobody";
  EXPECT_EQ(host_peak(roomy.ranks, {0, 1}, true), turns);
  EXPECT_EQ(host_peak(roomy.ranks, {0, 1}, false), roomy.node_host[0]);

  // A host between the two: auto turns them on and it fits; off does not, and the fix is auto.
  in.cluster.host_mem = turns + (roomy.node_host[0] - turns) / 2;
  const ClusterPlan automatic = make_plan(c, in, rates);
  EXPECT_TRUE(automatic.node_turns[0]);
  EXPECT_EQ(automatic.node_host[0], turns);
  EXPECT_TRUE(automatic.fits());
  in.job.memory_turns = TurnMode::Off;
  const ClusterPlan off = make_plan(c, in, rates);
  EXPECT_FALSE(off.fits());
  EXPECT_TRUE(std::any_of(off.fixes.begin(), off.fixes.end(),
                          [](const PlanFix& f) { return f.options == "--memory-turns auto"; }));
  // on: turns even where the ranks would fit at once.
  in.job.memory_turns = TurnMode::On;
  in.cluster.host_mem = 0;
  EXPECT_EQ(make_plan(c, in, rates, false).node_host[0], turns);
}

// Replicas of a stage hold their turn together (they exchange statistics during it).
TEST(ClusterPlan, MemoryTurnsAreTakenByStageGroups) {
  const ModelConfig c = config_of(512, 1376, 8, 8, 8, 2000);
  PlanInputs in = inputs_for(4, 1);
  in.job.replicas = 2;  // ranks 0, 2: stage 0; ranks 1, 3: stage 1
  in.job.memory_turns = TurnMode::On;
  const ClusterPlan plan = make_plan(c, in, test_rates(false), false);
  const auto& r = plan.ranks;
  const int64_t stage0 = r[0].peak_host + r[2].peak_host + r[1].before_turn + r[3].before_turn;
  const int64_t stage1 = r[0].waiting + r[2].waiting + r[1].peak_host + r[3].peak_host;
  EXPECT_EQ(plan.node_host[0], std::max(stage0, stage1));
}

TEST(ClusterPlan, BadLayoutsAreUsageErrors) {
  const ModelConfig c = config_of(64, 172, 5, 8, 4, 512);
  const OpRates rates = test_rates(false);
  auto kind_of = [&](PlanInputs in) {
    try {
      make_plan(c, in, rates);
    } catch (const Error& e) {
      return e.kind();
    }
    return ErrorKind::Internal;
  };
  PlanInputs in = inputs_for(3, 1);
  in.job.replicas = 2;  // 3 ranks cannot form 2 replicas
  EXPECT_EQ(kind_of(in), ErrorKind::Usage);
  EXPECT_EQ(kind_of(inputs_for(6, 1)), ErrorKind::Usage);  // 6 stages for 5 layers
  in = inputs_for(2, 1);
  in.job.replicas = 2;
  in.job.calib_spec.num_samples = 12;  // 6 per replica: not whole batches of 4
  EXPECT_EQ(kind_of(in), ErrorKind::Usage);
  in = inputs_for(1, 1);
  in.device = ComputeDevice::Cuda;  // no device rates given
  EXPECT_EQ(kind_of(in), ErrorKind::Usage);
}

TEST(ClusterPlan, DeviceMemoryIsTheLargestCallTimesConcurrentWorkers) {
  const ModelConfig c = config_of(512, 2048, 4, 8, 8, 1000);
  PlanInputs in = inputs_for(1, 1);
  in.device = ComputeDevice::Cuda;
  in.cluster.gpu_mem = int64_t{80} << 30;
  const OpRates rates = test_rates(true);
  const ClusterPlan one = make_plan(c, in, rates, false);
  ASSERT_EQ(one.ranks.size(), 1u);
  // GPTQ of down_proj (512 x 2048): the Hessian, its damped copy and U alone are 20 n^2 bytes.
  const int64_t context = ResourceInputs().device_runtime_bytes;
  EXPECT_GT(one.ranks[0].peak_device - context, int64_t{20} * 2048 * 2048);
  EXPECT_EQ(one.ranks[0].peak_device_phase, "measure mlp_out");
  in.job.threads = 3;  // three measure workers call the backend at once
  const ClusterPlan three = make_plan(c, in, rates, false);
  EXPECT_EQ(three.ranks[0].peak_device - context, 3 * (one.ranks[0].peak_device - context));
  // The CPU backend has no device term.
  in.device = ComputeDevice::Cpu;
  EXPECT_EQ(make_plan(c, in, rates, false).ranks[0].peak_device, 0);
}

TEST(TimeModel, MeasureTimeFollowsTheRecipeSpaceTheRowsAndTheErrorMode) {
  const ModelConfig c = config_of(1024, 2816, 2, 16, 16, 1000);
  const OpRates rates = test_rates(false);
  PlanInputs in = inputs_for(1, 1);
  auto measure_seconds = [&] { return make_plan(c, in, rates, false).times.ranks[0].measure.seconds; };
  const double fast = measure_seconds();
  in.job.search = "uniform:4b-g64";
  in.space = measured_space(in.job);
  const double one_spec = measure_seconds();
  EXPECT_GT(fast, 3 * one_spec);  // 'fast' measures 7 specs with ranks
  in.job.recipes = "fast";
  in.job.search = "minmax";
  in.space = measured_space(in.job);
  EXPECT_DOUBLE_EQ(measure_seconds(), fast);
  // GPTQ's own float32 errors skip the fp64 solve and the tridiagonalization.
  in.job.measure_errors = ErrorMode::Approximate;
  EXPECT_LT(measure_seconds(), fast);
  in.job.measure_errors = ErrorMode::Exact;
  // A quarter of the rows of the 1024- and 2816-row linears (the floor is 256).
  in.job.measure_rows = 0.25;
  const double quarter = measure_seconds();
  EXPECT_LT(quarter, 0.6 * fast);
  in.job.measure_rows_min = 1024;  // no fewer than all rows of the 1024-row linears
  EXPECT_GT(measure_seconds(), quarter);
  in.job.measure_rows = 1;
  // More workers, shorter measure (7 specs per linear to share out).
  in.job.threads = 4;
  EXPECT_LT(measure_seconds(), 0.5 * fast);
}

TEST(TimeModel, LaterStagesWaitForTheEarlierOnes) {
  const ModelConfig c = config_of(512, 1376, 8, 8, 8, 1000);
  PlanInputs in = inputs_for(4, 1);
  in.job.layers_per_rank = 2;
  const ClusterPlan plan = make_plan(c, in, test_rates(false), false);
  ASSERT_EQ(plan.times.ranks.size(), 4u);
  for (const auto& r : plan.times.ranks) EXPECT_LE(r.busy(), plan.times.total * (1 + 1e-9));
  // Stages that feed a next one run the FP forward twice in the measure pass
  // (pass 0, then the walk with statistics); the last stage only walks, but
  // waits for the earlier stages' pass 0.
  EXPECT_GT(plan.times.ranks[0].calibrate.seconds, 1.2 * plan.times.ranks[3].calibrate.seconds);
  EXPECT_GT(plan.times.ranks[3].wait, 0);
  EXPECT_GT(plan.times.measure_pass, plan.times.ranks[0].calibrate.seconds + plan.times.ranks[0].measure.seconds);
}

TEST(OpRates, ParsingIsStrictAndLaterFilesOverride) {
  EXPECT_THROW(parse_op_rates("gemm_f32_gflops_1t = 0\n", "x.toml"), Error);
  EXPECT_THROW(parse_op_rates("gemm_f32_gflop = 3\n", "x.toml"), Error);
  EXPECT_THROW(parse_op_rates("network_gbs = \"fast\"\n", "x.toml"), Error);
  try {
    parse_op_rates("threads = 2\nno_such_rate = 1\n", "x.toml");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input);
    EXPECT_NE(std::string(e.what()).find("x.toml:2"), std::string::npos) << e.what();
  }
  OpRates r = test_rates(false);
  EXPECT_TRUE(r.has_host());
  EXPECT_FALSE(r.has_device());
  EXPECT_DOUBLE_EQ(r.gemm_f32_1t, 50e9);
  r = parse_op_rates("gemm_f32_gflops_1t = 70\ngpu_call_us = 5\n", "over.toml", r);
  EXPECT_DOUBLE_EQ(r.gemm_f32_1t, 70e9);
  EXPECT_DOUBLE_EQ(r.gpu_call_seconds, 5e-6);
  EXPECT_EQ(r.sources.size(), 2u);
  // What op_rates_toml writes reads back the same.
  const OpRates back = parse_op_rates(op_rates_toml(r, {"header"}), "back.toml");
  EXPECT_NEAR(back.gemm_f32_1t, r.gemm_f32_1t, 1e6);
  EXPECT_EQ(back.machine, "test");
}

TEST(OpRates, TheShippedRatesFilesAreComplete) {
  EXPECT_TRUE(load_op_rates({"cpu"}).has_host());
  EXPECT_TRUE(load_op_rates({"cpu", "cuda"}).has_device());
}

TEST(ClusterPlan, ByteSizes) {
  EXPECT_EQ(parse_size_option("80GiB", "--gpu-mem"), int64_t{80} << 30);
  EXPECT_EQ(parse_size_option("512 GiB", "--host-mem"), int64_t{512} << 30);
  EXPECT_EQ(parse_size_option("1.5TB", "--disk"), int64_t{1500000000000});
  EXPECT_EQ(parse_size_option("4096", "--disk"), 4096);
  EXPECT_THROW(parse_size_option("lots", "--disk"), Error);
  EXPECT_THROW(parse_size_option("-3G", "--disk"), Error);
  EXPECT_THROW(parse_size_option("3 parsecs", "--disk"), Error);
  try {
    parse_size_option("512G", "--host-mem");  // G alone: GB or GiB? refused
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Usage);
    EXPECT_NE(std::string(e.what()).find("--host-mem 512G"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace amlq
