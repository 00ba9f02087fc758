#include "pipeline/json_checkpoint.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace amlq {
namespace {

MeasurementTable small_table() {
  LayerMeasurement l;
  l.name = "model.layers.0.mlp.down_proj";
  l.rows = 64;
  l.cols = 172;
  l.candidates.push_back({QuantSpec::parse("4b-g32-sym"), 0, 4.5, 0.008});
  l.candidates.push_back({QuantSpec::parse("25%4b-g64+75%3b-g64"), 8, 5.6, 0.02});
  return {l};
}

std::string error_of(const std::string& text) {
  try {
    table_from_json(parse_json_text(text, "measure.json"), "measure.json");
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "accepted " << text;
  return "";
}

TEST(JsonCheckpoint, TableAndPlanRoundTrip) {
  const MeasurementTable table = small_table();
  EXPECT_EQ(table_from_json(table_to_json(table), "t"), table);
  MeasurementTable with_alpha = table;
  with_alpha[0].alpha = 0.42;
  with_alpha[0].alpha_linearity = 1.1;
  EXPECT_EQ(table_from_json(table_to_json(with_alpha), "t"), with_alpha);
  EXPECT_FALSE(table_to_json(table)[0].contains("alpha"));  // measure checkpoints keep their form
  SearchResult plan;
  plan.method = "minmax";
  plan.choice = {1, 0, 3};
  plan.target_bpw = 3;
  const SearchResult back = plan_from_json(plan_to_json(plan), "p");
  EXPECT_EQ(back.choice, plan.choice);
  EXPECT_EQ(back.method, plan.method);
  plan.loss_weighted = true;
  plan.predicted_delta_nll = 0.125;
  const SearchResult weighted = plan_from_json(plan_to_json(plan), "p");
  EXPECT_TRUE(weighted.loss_weighted);
  EXPECT_EQ(weighted.predicted_delta_nll, 0.125);
}

TEST(JsonCheckpoint, NegativeOrNonFiniteAlphaIsAnInputError) {
  EXPECT_NE(error_of(R"([{"name":"a","rows":1,"cols":1,"candidates":[["4b-g32",0,4.5,0.1]],"alpha":-1,)"
                     R"("alpha_linearity":1}])")
                .find("alpha"),
            std::string::npos);
  EXPECT_NE(error_of(R"([{"name":"a","rows":1,"cols":1,"candidates":[["4b-g32",0,4.5,0.1]],"alpha":1}])")
                .find("alpha_linearity"),
            std::string::npos);
}

// Found by fuzzing (tests/fuzz, targets measure_json and plan_json): a bad spec
// label was a Usage error (exit 2, as if the command line were wrong), numbers of
// the wrong type were converted with undefined behaviour, and a table that is not
// an array escaped as an nlohmann exception (exit 1).
TEST(JsonCheckpoint, MalformedTablesAreInputErrorsNamingTheFile) {
  const std::string row = R"({"name": "l", "rows": 4, "cols": 4, "candidates": [%]})";
  auto with = [&](const std::string& candidate) {
    std::string r = row;
    r.replace(r.find('%'), 1, candidate);
    return "[" + r + "]";
  };
  EXPECT_NE(error_of(with(R"(["4b-gx", 0, 4.0, 0.1])")).find("measure.json (layer 'l'): bad quantization spec"),
            std::string::npos);
  EXPECT_NE(error_of(with(R"(["4b-g32", 1e300, 4.0, 0.1])")).find("'rank' has the wrong type"), std::string::npos);
  EXPECT_NE(error_of(with(R"(["4b-g32", 4294967296, 4.0, 0.1])")).find("out of range"), std::string::npos);
  EXPECT_NE(error_of(with(R"(["4b-g32", 0, 4.0])")).find("is not [spec, rank, bpw, eps(, stderr)]"), std::string::npos);
  EXPECT_NE(error_of(R"({"table": []})").find("expected an array of layers"), std::string::npos);
  EXPECT_NE(error_of(R"([{"name": "l", "rows": 4}])").find("missing required field 'cols'"), std::string::npos);
  EXPECT_NE(error_of(R"([7])").find("expected a JSON object holding 'name'"), std::string::npos);
  EXPECT_NE(error_of("[1e400]").find("measure.json: not valid JSON"), std::string::npos);
  try {
    plan_from_json(parse_json_text(R"({"method": "minmax", "target_bpw": 3, "achieved_bpw": 3, "max_eps": 0,
                                       "sum_eps": 0, "threshold": 0, "choice": [0, -1]})", "plan.json"),
                   "plan.json");
    ADD_FAILURE() << "accepted a negative choice";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input);
    EXPECT_NE(std::string(e.what()).find("plan.json: choice -1 is negative"), std::string::npos) << e.what();
  }
}

// `--search plan:<file>` reads a quantize report (or any object with the same
// "layers" list); every defect is an Input error naming the file.
TEST(JsonCheckpoint, ListedPlanReadsNamesSpecsAndRanks) {
  const std::string path = ::testing::TempDir() + "/listed_plan.json";
  auto write = [&](const std::string& text) {
    std::ofstream(path) << text;
    return path;
  };
  const auto listed = read_listed_plan(write(R"({"model": "m", "layers": [
      {"name": "b", "spec": "3b-g64", "rank": 8, "eps": 0.1},
      {"name": "a", "spec": "4b-g128-noact"}]})"));
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].name, "b");
  EXPECT_EQ(listed[0].spec, QuantSpec::parse("3b-g64"));
  EXPECT_EQ(listed[0].rank, 8);
  EXPECT_EQ(listed[1].spec, QuantSpec::parse("4b-g128-noact"));
  EXPECT_EQ(listed[1].rank, 0);
  auto error = [&](const std::string& text) {
    try {
      read_listed_plan(write(text));
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Input) << e.what();
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      return std::string(e.what());
    }
    ADD_FAILURE() << "accepted " << text;
    return std::string();
  };
  EXPECT_NE(error(R"({"layers": []})").find("non-empty \"layers\""), std::string::npos);
  EXPECT_NE(error(R"([1, 2])").find("non-empty \"layers\""), std::string::npos);
  EXPECT_NE(error(R"({"layers": [{"name": "a"}]})").find("layers[0] needs"), std::string::npos);
  EXPECT_NE(error(R"({"layers": [{"name": "a", "spec": "3b"}]})").find("layers[0] ('a'): bad quantization spec"),
            std::string::npos);
  EXPECT_NE(error(R"({"layers": [{"name": "a", "spec": "3b-g64", "rank": -1}]})").find("non-negative integer"),
            std::string::npos);
  EXPECT_NE(error(R"({"layers": [{"name": "a", "spec": "3b-g64", "rank": 1.5}]})").find("non-negative integer"),
            std::string::npos);
  EXPECT_NE(error("{").find("not valid JSON"), std::string::npos);
  std::filesystem::remove(path);
  try {
    read_listed_plan(path);
    ADD_FAILURE() << "read a missing file";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input);
    EXPECT_NE(std::string(e.what()).find(path + ": cannot open"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace amlq
