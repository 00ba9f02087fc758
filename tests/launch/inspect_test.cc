#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace amlq {
namespace {

TEST(InspectCommand, Stories260KHasFiveLayersOfSevenLinears) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  const auto r = test::run_amlq("inspect " + test::shared_path("models/stories260K"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("5 decoder layers x 7 linears"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("260,032 total"), std::string::npos) << r.output;
}

TEST(InspectCommand, MissingModelIsAnInputErrorWithExitCode3) {
  const auto r = test::run_amlq("inspect /nonexistent/model");
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("/nonexistent/model"), std::string::npos) << r.output;
}

TEST(InspectCommand, UnknownOptionIsAUsageError) {
  const auto r = test::run_amlq("inspect --no-such-flag x");
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

}  // namespace
}  // namespace amlq
