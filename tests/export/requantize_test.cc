// --requantize regenerates statistics from the source model and the
// calibration options recorded in the file. Re-running a layer at its own
// stored configuration must reproduce it exactly: same codes, scales, zeros,
// permutation and factors (label model: stories260K).
#include <gtest/gtest.h>

#include "backend/backend.h"
#include "core/error.h"
#include "export/requantize.h"
#include "io/hdf5/quantized_model.h"
#include "tests/test_util.h"

namespace amlq {
namespace {

TEST(Requantize, StoredConfigurationReproducesTheStoredLayers) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  test::TempDir tmp;
  const std::string h5 = tmp.file("m.h5");
  const auto r = test::run_amlq("--log-level warn --threads 1 quantize " + test::shared_path("models/stories260K") +
                                " --calib " + test::shared_path("data/wikitext2/valid.tok512.u16") +
                                " --calib-samples 12 --calib-seqlen 96 --batch 5 --samples-per-block 4"
                                " --search uniform:3b-g32-r8 --out " + h5);
  ASSERT_EQ(r.exit_code, 0) << r.output;

  const QuantizedModelFile file(h5);
  const CalibrationRecord record = read_calibration_record(file.layout().header.extra_json, h5);
  EXPECT_EQ(record.num_samples, 12);
  EXPECT_EQ(record.seqlen, 96);
  EXPECT_EQ(record.batch, 5);
  EXPECT_EQ(record.samples_per_block, 4);
  EXPECT_EQ(record.data, test::shared_path("data/wikitext2/valid.tok512.u16"));

  // One linear per input site, in two layers.
  std::vector<RequantizeTarget> targets;
  for (size_t i : {size_t{1}, size_t{3}, size_t{12}, size_t{13}}) {
    const PackedLinear& l = file.layout().linears[i];
    targets.push_back({i, Candidate{l.spec, l.rank, l.bpw, l.eps}});
  }
  auto backend = make_backend("cpu");
  const auto redone = requantize_linears(*backend, file, targets, {}, nullptr);
  ASSERT_EQ(redone.size(), targets.size());
  for (size_t t = 0; t < targets.size(); ++t) {
    const PackedLinear stored = file.read_linear(targets[t].index);
    const PackedLinear& again = redone[t];
    EXPECT_EQ(again.name, stored.name);
    EXPECT_EQ(again.perm, stored.perm) << stored.name;
    ASSERT_EQ(again.parts.size(), 1u);
    EXPECT_EQ(again.parts[0].codes, stored.parts[0].codes) << stored.name;
    EXPECT_EQ(again.parts[0].scales, stored.parts[0].scales) << stored.name;
    EXPECT_EQ(again.parts[0].zeros, stored.parts[0].zeros) << stored.name;
    EXPECT_EQ(again.a_fp16, stored.a_fp16) << stored.name;
    EXPECT_EQ(again.b_fp16, stored.b_fp16) << stored.name;
    EXPECT_EQ(again.eps, stored.eps) << stored.name;
  }

  // Changed calibration data is refused, naming the file.
  const std::string other = tmp.file("other.u16");
  std::filesystem::copy_file(test::shared_path("data/wikitext2/test.tok512.u16"), other);
  try {
    requantize_linears(*backend, file, targets, {"", other}, nullptr);
    FAIL() << "accepted different calibration data";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input);
    EXPECT_NE(std::string(e.what()).find(other), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace amlq
