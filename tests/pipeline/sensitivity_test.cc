#include "pipeline/sensitivity.h"

#include <gtest/gtest.h>

#include <numeric>

#include "core/error.h"

namespace amlq {
namespace {

TEST(Sensitivity, SlopeOfALinearLossIsItsCoefficientWithLinearityOne) {
  const double e1 = kProbeEnergies[0], e2 = kProbeEnergies[1];
  const ProbeSlope s = probe_slope(0.7 * e1, 0.7 * e2);
  EXPECT_NEAR(s.alpha, 0.7, 1e-12);
  EXPECT_NEAR(s.linearity, 1.0, 1e-12);
}

TEST(Sensitivity, CurvatureShowsInTheLinearityCheck) {
  const double e1 = kProbeEnergies[0], e2 = kProbeEnergies[1];
  // d(e) = e + 10 e^2: the slope grows with the energy.
  const ProbeSlope s = probe_slope(e1 + 10 * e1 * e1, e2 + 10 * e2 * e2);
  EXPECT_NEAR(s.linearity, (1 + 10 * e2) / (1 + 10 * e1), 1e-12);
  EXPECT_GT(s.alpha, 1.0);
  // Least squares through the origin.
  const double d1 = e1 + 10 * e1 * e1, d2 = e2 + 10 * e2 * e2;
  EXPECT_NEAR(s.alpha, (e1 * d1 + e2 * d2) / (e1 * e1 + e2 * e2), 1e-12);
  EXPECT_EQ(probe_slope(0, 0.1).linearity, 0);  // undefined: reported as 0
}

TEST(Sensitivity, ProbeWindowsAreHeldOutFromCalibration) {
  std::vector<int32_t> ids(10000);
  std::iota(ids.begin(), ids.end(), 0);
  CalibrationSpec consecutive{8, 100, 0, false};
  const auto calib = sample_calibration(ids, consecutive);
  const auto probes = probe_windows(ids, consecutive, 3);
  ASSERT_EQ(probes.size(), 3u);
  for (size_t i = 0; i < probes.size(); ++i) {
    ASSERT_EQ(probes[i].size(), 100u);
    EXPECT_EQ(probes[i].front(), static_cast<int32_t>(100 * (8 + i)));  // the windows after the calibration's
  }
  CalibrationSpec random{8, 100, 5, true};
  const auto draws = sample_calibration(ids, CalibrationSpec{11, 100, 5, true});
  const auto random_probes = probe_windows(ids, random, 3);
  EXPECT_EQ(random_probes, std::vector<std::vector<int32_t>>(draws.begin() + 8, draws.end()));
  const auto calib_draws = sample_calibration(ids, random);
  EXPECT_EQ(calib_draws, std::vector<std::vector<int32_t>>(draws.begin(), draws.begin() + 8));
}

TEST(Sensitivity, ValidationWindowsFollowTheProbesWithoutSharingDraws) {
  std::vector<int32_t> ids(10000);
  std::iota(ids.begin(), ids.end(), 0);
  CalibrationSpec consecutive{8, 100, 0, false};
  const auto validation = held_out_windows(ids, consecutive, 3, 2, "--validate-windows");
  ASSERT_EQ(validation.size(), 2u);
  EXPECT_EQ(validation[0].front(), 100 * (8 + 3));
  EXPECT_EQ(validation[1].front(), 100 * (8 + 4));
  CalibrationSpec random{8, 100, 5, true};
  const auto draws = sample_calibration(ids, CalibrationSpec{13, 100, 5, true});
  EXPECT_EQ(held_out_windows(ids, random, 3, 2, "--validate-windows"),
            std::vector<std::vector<int32_t>>(draws.begin() + 11, draws.end()));
  // Longer windows (--validate-seqlen): consecutive ones start after the
  // calibration's and the probes'; random ones take the same draws, so the
  // offsets are those of the draws modulo the longer window's range.
  const auto long_consecutive = held_out_windows(ids, consecutive, 3, 2, "--validate-windows", 250);
  ASSERT_EQ(long_consecutive.size(), 2u);
  EXPECT_EQ(long_consecutive[0].size(), 250u);
  EXPECT_EQ(long_consecutive[0].front(), 100 * (8 + 3));
  EXPECT_EQ(long_consecutive[1].front(), 100 * (8 + 3) + 250);
  const auto long_draws = sample_calibration(ids, CalibrationSpec{13, 250, 5, true});
  EXPECT_EQ(held_out_windows(ids, random, 3, 2, "--validate-windows", 250),
            std::vector<std::vector<int32_t>>(long_draws.begin() + 11, long_draws.end()));
  try {
    held_out_windows(std::vector<int32_t>(1200, 1), consecutive, 3, 2, "--validate-windows");
    FAIL() << "accepted 13 windows of 100 in 1200 ids";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Usage);
    EXPECT_NE(std::string(e.what()).find("--validate-windows"), std::string::npos) << e.what();
  }
  try {
    held_out_windows(std::vector<int32_t>(1250, 1), consecutive, 3, 1, "--validate-windows", 200);
    FAIL() << "accepted a window of 200 after 11 of 100 in 1250 ids";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Usage);
  }
}

TEST(Sensitivity, SeparateValidationDataIsDrawnAsTheCalibration) {
  std::vector<int32_t> ids(5000);
  std::iota(ids.begin(), ids.end(), 0);
  // Random offsets: the calibration's seed, this file's range.
  EXPECT_EQ(separate_windows(ids, CalibrationSpec{8, 100, 5, true}, 3, 250, "held.u16"),
            sample_calibration(ids, CalibrationSpec{3, 250, 5, true}));
  // Consecutive: the file's first windows (nothing of it is calibration).
  const auto consecutive = separate_windows(ids, CalibrationSpec{8, 100, 0, false}, 2, 250, "held.u16");
  ASSERT_EQ(consecutive.size(), 2u);
  EXPECT_EQ(consecutive[0].front(), 0);
  EXPECT_EQ(consecutive[1].front(), 250);
  for (const bool random : {true, false}) {
    try {
      separate_windows(std::vector<int32_t>(200, 1), CalibrationSpec{8, 100, 0, random}, 2, 250, "held.u16");
      ADD_FAILURE() << "accepted 200 ids for windows of 250";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Input);
      EXPECT_NE(std::string(e.what()).find("held.u16"), std::string::npos) << e.what();
    }
  }
}

TEST(Sensitivity, TooFewHeldOutWindowsIsAUsageErrorSayingHowToSkip) {
  std::vector<int32_t> ids(1000, 1);
  try {
    probe_windows(ids, CalibrationSpec{9, 100, 0, false}, 4);
    FAIL() << "accepted 13 windows of 100 in 1000 ids";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Usage);
    EXPECT_NE(std::string(e.what()).find("--sensitivity-windows"), std::string::npos) << e.what();
  }
  EXPECT_THROW(probe_windows(ids, CalibrationSpec{2, 100, 0, false}, 0), Error);
}

}  // namespace
}  // namespace amlq
