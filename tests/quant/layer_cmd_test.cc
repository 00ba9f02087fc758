#include <gtest/gtest.h>

#include "io/safetensors.h"
#include "tests/quant/quant_test_util.h"
#include "tests/test_util.h"

namespace amlq {
namespace {

class LayerCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    const MatrixF w = test::random_weights(16, 64, 1);
    const MatrixF h = test::realistic_hessian(64, 2).cast<float>();
    SafetensorsWriter ww;
    ww.add_f32("weight", {16, 64}, std::span<const float>(w.data(), w.size()));
    ww.write(weight());
    SafetensorsWriter hw;
    hw.add_f32("hessian", {64, 64}, std::span<const float>(h.data(), h.size()));
    hw.write(hessian());
    const std::vector<float> s(64, 1.0f);
    SafetensorsWriter sw;
    sw.add_f32("scale", {64}, s);
    sw.write(scale());
    SafetensorsWriter two;
    two.add_f32("a", {64}, s);
    two.add_f32("b", {64}, s);
    two.write(dir.file("two.safetensors"));
  }
  std::string weight() const { return dir.file("w.safetensors"); }
  std::string hessian() const { return dir.file("h.safetensors"); }
  std::string scale() const { return dir.file("s.safetensors"); }
  std::string base() const { return "layer --weight " + weight() + " --hessian " + hessian(); }
  test::TempDir dir;
};

TEST_F(LayerCommand, PrintsEpsBpwAndTime) {
  const auto r = test::run_amlq(base() + " --bits 4 --group 32 --act-order");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("eps "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("bpw       4.625000"), std::string::npos) << r.output;  // 4 + 20/32
  EXPECT_NE(r.output.find("time "), std::string::npos) << r.output;
}

TEST_F(LayerCommand, LowRankAndOutputFile) {
  const std::string out = dir.file("out.safetensors");
  const auto r = test::run_amlq(base() + " --spec 50%3b-g32+50%2b-g32 --rank 4 --lowrank l2qer --act-scale " + scale() +
                                " --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("quantization alone"), std::string::npos) << r.output;
  const auto file = SafetensorsFile::open(out);
  for (const char* name : {"part0.codes", "part0.scales", "part0.zeros", "part1.codes", "perm", "lowrank.a", "lowrank.b"})
    EXPECT_TRUE(file->has(name)) << name;
  EXPECT_EQ(file->info("part1.codes").shape, (std::vector<int64_t>{16, 2}));  // 32 codes x 2 bits = 2 words
  EXPECT_EQ(file->metadata().at("spec"), "50%3b-g32+50%2b-g32");
}

TEST_F(LayerCommand, GroupWiderThanTheLayerIsAnInputError) {
  const auto r = test::run_amlq(base() + " --bits 4 --group 128");
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("group size 128 exceeds the 64 columns of part 1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("w.safetensors"), std::string::npos) << r.output;
}

TEST_F(LayerCommand, GroupThatDoesNotDivideEndsWithAShortGroup) {
  const std::string out = dir.file("g24.safetensors");
  const auto r = test::run_amlq(base() + " --bits 4 --group 24 --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // 64 = 24 + 24 + 16: 3 groups per row, (4 * 64 + 20 * 3) / 64 bits per weight.
  EXPECT_NE(r.output.find("bpw       4.937500"), std::string::npos) << r.output;
  EXPECT_EQ(SafetensorsFile::open(out)->info("part0.scales").shape, (std::vector<int64_t>{16, 3}));
}

TEST_F(LayerCommand, FileWithTwoTensorsIsAnInputError) {
  const auto r = test::run_amlq("layer --weight " + dir.file("two.safetensors") + " --hessian " + hessian());
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("exactly one tensor"), std::string::npos) << r.output;
}

TEST_F(LayerCommand, HessianOfTheWrongShapeIsAnInputError) {
  const auto r = test::run_amlq("layer --weight " + weight() + " --hessian " + scale());
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("needs [64, 64]"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace amlq
