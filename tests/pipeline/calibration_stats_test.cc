#include "pipeline/calibration_stats.h"

#include <gtest/gtest.h>
#include <hdf5.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "tests/test_util.h"

namespace amlq {
namespace {

// One decoder layer's statistics: input widths 8 (attn in), 8 (attn out), 8 (mlp in), 12 (mlp out).
CalibrationStats tiny_stats(int layer) {
  CalibrationStats stats;
  stats.input_hash = "0123456789abcdef";
  stats.description = "test";
  LayerCalibration l;
  l.layer = layer;
  const int widths[4] = {8, 8, 8, 12};
  for (int s = 0; s < 4; ++s) {
    auto& site = l.sites[static_cast<size_t>(s)];
    site.hessian = MatrixD::Identity(widths[s], widths[s]) * (s + 1);
    site.act_scale = VectorD::Constant(widths[s], 0.5);
    site.tokens = 64;
  }
  stats.layers.push_back(l);
  return stats;
}

std::string read_error(const std::string& path) {
  try {
    (void)read_calibration_stats(path);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input) << e.what();
    return e.what();
  }
  ADD_FAILURE() << path << " was accepted";
  return "";
}

TEST(CalibrationStats, RoundTrip) {
  test::TempDir dir;
  const std::string path = dir.file("layer_00001.h5");
  write_calibration_stats(path, tiny_stats(1));
  const CalibrationStats back = read_calibration_stats(path);
  EXPECT_EQ(back.input_hash, "0123456789abcdef");
  ASSERT_EQ(back.layers.size(), 1u);
  EXPECT_EQ(back.layers[0].layer, 1);
  EXPECT_EQ(back.layers[0].site(InputSite::MlpOut).hessian, tiny_stats(1).layers[0].site(InputSite::MlpOut).hessian);
  EXPECT_EQ(read_checkpoint_hash(path), "0123456789abcdef");
}

// A truncated file or one that is not HDF5 is an Input error naming the file.
TEST(CalibrationStats, DamagedFilesAreInputErrors) {
  test::TempDir dir;
  const std::string path = dir.file("layer_00000.h5");
  write_calibration_stats(path, tiny_stats(0));
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::ofstream(dir.file("short.h5"), std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  EXPECT_EQ(read_checkpoint_hash(dir.file("short.h5")), "");
  EXPECT_NE(read_error(dir.file("short.h5")).find("short.h5"), std::string::npos);
  std::ofstream(dir.file("text.h5"), std::ios::binary) << "not hdf5";
  EXPECT_NE(read_error(dir.file("text.h5")).find("text.h5"), std::string::npos);
}

// Found by fuzzing (target calibration_h5, regression input
// regress-attribute-not-scalar): a 'tokens' attribute with two elements was read
// into one int64 on the stack, and HDF5 wrote past it.
TEST(CalibrationStats, AttributesMustBeSingleNumbers) {
  test::TempDir dir;
  const std::string path = dir.file("layer_00000.h5");
  write_calibration_stats(path, tiny_stats(0));
  {
    const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(file, 0);
    const hid_t group = H5Gopen2(file, "layer_0/attn_in", H5P_DEFAULT);
    ASSERT_GE(H5Adelete(group, "tokens"), 0);
    const hsize_t two = 2;
    const hid_t space = H5Screate_simple(1, &two, nullptr);
    const hid_t attr = H5Acreate2(group, "tokens", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
    const int64_t values[2] = {7, 8};
    ASSERT_GE(H5Awrite(attr, H5T_NATIVE_INT64, values), 0);
    H5Aclose(attr);
    H5Sclose(space);
    H5Gclose(group);
    H5Fclose(file);
  }
  const std::string message = read_error(path);
  EXPECT_NE(message.find("attribute 'tokens' is not a single number"), std::string::npos) << message;
  EXPECT_NE(message.find(path), std::string::npos) << message;
}

}  // namespace
}  // namespace amlq
