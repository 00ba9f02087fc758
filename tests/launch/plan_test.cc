// amlq plan from the command line: stories260K and a tiny synthetic config,
// the JSON agreeing with predict_resources, the verdict and its fixes, and the
// exit codes of bad input.
#include <gtest/gtest.h>

#include <fstream>
#include <utility>
#include <nlohmann/json.hpp>

#include "core/parallel.h"
#include "io/model_config.h"
#include "pipeline/resources.h"
#include "tests/test_util.h"

namespace amlq {
namespace {

// A 4-layer model, written as config.json: planned instantly, but with measure
// working sets (a 1376-wide Hessian per worker) that --threads visibly changes.
std::string write_tiny_config(const test::TempDir& dir) {
  const std::string path = dir.file("config.json");
  std::ofstream(path) << R"({"model_type": "llama", "hidden_size": 512, "intermediate_size": 1376,
    "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 1000,
    "max_position_embeddings": 512, "rms_norm_eps": 1e-5, "torch_dtype": "bfloat16"})";
  return path;
}

nlohmann::json plan_json(const std::string& args, const test::TempDir& dir) {
  const std::string out = dir.file("plan.json");
  const auto r = test::run_shell(std::string(AMLQ_BINARY) + " plan " + args + " --json > " + out);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(out);
  return nlohmann::json::parse(in);
}

TEST(PlanCommand, Stories260KAgreesWithPredictResources) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  test::TempDir dir;
  const std::string model = test::shared_path("models/stories260K");
  const auto j = plan_json(model + " --np 2 --threads 2 --recipes fast --calib-samples 16 --calib-seqlen 64", dir);
  // The same inputs through the function `amlq quantize` logs and reports.
  QuantizeOptions job;
  job.recipes = "fast";
  job.calib_spec.num_samples = 16;
  job.calib_spec.seqlen = 64;
  job.threads = 2;
  ResourceInputs inputs = resource_inputs(job, 2, 4.0, measured_space(job));  // fp32 weights
  inputs.runtime_bytes = j["run"]["runtime_bytes"].get<int64_t>();  // the plan measures its own, as the run does
  EXPECT_GT(inputs.runtime_bytes, 1 << 20);
  const auto expected = predict_resources(load_model_config(model), inputs);
  ASSERT_EQ(j.at("ranks").size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(j["ranks"][i]["peak_host_bytes"].get<int64_t>(), expected[i].peak_host) << "rank " << i;
    EXPECT_EQ(j["ranks"][i]["peak_host_phase"].get<std::string>(), expected[i].peak_phase);
    EXPECT_GT(j["ranks"][i]["seconds"]["measure"].get<double>(), 0);
  }
  EXPECT_TRUE(j["verdict"]["fits"].get<bool>());
}

TEST(PlanCommand, TinyConfigPrintsATableAndAVerdict) {
  test::TempDir dir;
  const std::string config = write_tiny_config(dir);
  const auto r = test::run_amlq("plan " + config + " --np 2 --host-mem 64GiB --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("verdict     FITS"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("[0, 2)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("[2, 4)"), std::string::npos) << r.output;
}

TEST(PlanCommand, TooLittleHostMemoryComesWithFixes) {
  test::TempDir dir;
  const std::string config = write_tiny_config(dir);
  const auto j = plan_json(config + " --np 1 --threads 4", dir);
  const int64_t need = j["job"]["node_host_bytes"][0].get<int64_t>();
  // 20 MiB short: more than the runtime term (this process's RSS) varies between runs.
  const std::string short_of = std::to_string(need - (20 << 20));
  const auto tight = plan_json(config + " --np 1 --threads 4 --host-mem " + short_of, dir);
  EXPECT_FALSE(tight["verdict"]["fits"].get<bool>());
  ASSERT_FALSE(tight["verdict"]["fixes"].empty());
  // Which options help depends on the formula's terms; every fix names its
  // options and its effect, and the last resort (more memory) is always offered.
  bool more_memory = false;
  for (const auto& f : tight["verdict"]["fixes"]) {
    EXPECT_FALSE(f["options"].get<std::string>().empty());
    EXPECT_FALSE(f["effect"].get<std::string>().empty());
    more_memory |= f["options"].get<std::string>().rfind("--host-mem", 0) == 0;
  }
  EXPECT_GE(tight["verdict"]["fixes"].size(), 2u) << tight["verdict"].dump(2);
  EXPECT_TRUE(more_memory) << tight["verdict"].dump(2);
  const auto r = test::run_amlq("plan " + config + " --np 1 --threads 4 --host-mem " + short_of);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("DOES NOT FIT"), std::string::npos) << r.output;
}

TEST(PlanCommand, BadInputGivesAClearErrorAndExitCode) {
  test::TempDir dir;
  const std::string config = write_tiny_config(dir);
  auto r = test::run_amlq("plan /nonexistent/model --np 2");
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("/nonexistent/model"), std::string::npos) << r.output;
  r = test::run_amlq("plan " + config + " --np 3 --replicas 2");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("cannot form 2 replicas"), std::string::npos) << r.output;
  r = test::run_amlq("plan " + config + " --np 5");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("5 pipeline stages for 4 decoder layers"), std::string::npos) << r.output;
  r = test::run_amlq("plan " + config + " --host-mem lots");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = test::run_amlq("plan " + config + " --rates " + dir.file("missing.toml"));
  EXPECT_EQ(r.exit_code, 3) << r.output;
  r = test::run_amlq("plan " + config + " --measure-rows 0");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--measure-rows must be in (0, 1]"), std::string::npos) << r.output;
  r = test::run_amlq("plan " + config + " --measure-errors fast");
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

// A broken config.json: exit code 3 (input) and one error line naming the file.
TEST(PlanCommand, BrokenConfigJsonNamesTheFile) {
  test::TempDir dir;
  const std::string not_json = dir.file("not-json.json");
  std::ofstream(not_json) << "{\"hidden_size\": 512,";
  const std::string no_layers = dir.file("no-layers.json");
  std::ofstream(no_layers) << R"({"model_type": "llama", "hidden_size": 512, "intermediate_size": 1376,
    "num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 1000})";
  for (const auto& [path, what] : {std::pair{not_json, std::string("not valid JSON")},
                                   std::pair{no_layers, std::string("num_hidden_layers")}}) {
    const auto r = test::run_amlq("plan " + path + " --np 2");
    EXPECT_EQ(r.exit_code, 3) << r.output;
    const auto line = r.output.find(path);
    ASSERT_NE(line, std::string::npos) << r.output;
    const auto end = r.output.find('\n', line);
    EXPECT_NE(r.output.substr(line, end - line).find(what), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("verdict"), std::string::npos) << "no plan after an error: " << r.output;
  }
}

}  // namespace
}  // namespace amlq
