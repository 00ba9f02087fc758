#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fp16.h"
#include "io/safetensors.h"
#include "tests/test_util.h"

namespace amlq {
namespace {

// Writes a safetensors file from a raw header string and data bytes.
void write_raw(const std::string& path, const std::string& header, const std::vector<uint8_t>& data,
               int64_t claimed_header_len = -1) {
  std::ofstream f(path, std::ios::binary);
  const uint64_t n = claimed_header_len >= 0 ? static_cast<uint64_t>(claimed_header_len) : header.size();
  f.write(reinterpret_cast<const char*>(&n), 8);
  f << header;
  f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

// Expects opening `path` to fail with an Input error whose message contains every needle.
void expect_input_error(const std::string& path, std::initializer_list<std::string> needles) {
  try {
    SafetensorsFile::open(path);
    FAIL() << "opened a malformed file";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input);
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "error must be one line: " << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "missing '" << n << "' in: " << msg;
  }
}

TEST(Safetensors, WriterRoundTripsEveryDtype) {
  test::TempDir dir;
  SafetensorsWriter w;
  const std::vector<float> f32{1.5f, -2.0f, 0.25f, 3.0f, 0.0f, -0.5f};
  w.add_f32("a.f32", {2, 3}, f32);
  const std::vector<uint16_t> f16{float_to_fp16(1.5f), float_to_fp16(-0.125f)};
  w.add("b.f16", DType::F16, {2}, std::as_bytes(std::span(f16)));
  const std::vector<uint16_t> bf16{float_to_bf16(-3.0f), float_to_bf16(0.5f), float_to_bf16(8.0f)};
  w.add("c.bf16", DType::BF16, {3, 1}, std::as_bytes(std::span(bf16)));
  const std::vector<int8_t> i8{-128, 0, 127};
  w.add("d.i8", DType::I8, {3}, std::as_bytes(std::span(i8)));
  const std::vector<int32_t> i32{-7, 1 << 20};
  w.add("e.i32", DType::I32, {2}, std::as_bytes(std::span(i32)));
  w.set_metadata("format", "pt");
  w.write(dir.file("x.safetensors"));

  auto f = SafetensorsFile::open(dir.file("x.safetensors"));
  EXPECT_EQ(f->metadata().at("format"), "pt");
  ASSERT_EQ(f->tensors().size(), 5u);
  EXPECT_EQ(f->read_f32("a.f32").data, f32);
  EXPECT_EQ(f->read_f32("a.f32").rows(), 2);
  EXPECT_EQ(f->read_f32("a.f32").cols(), 3);
  EXPECT_EQ(f->read_f32("b.f16").data, (std::vector<float>{1.5f, -0.125f}));
  EXPECT_EQ(f->read_f32("c.bf16").data, (std::vector<float>{-3.0f, 0.5f, 8.0f}));
  EXPECT_EQ(f->read_f32("d.i8").data, (std::vector<float>{-128, 0, 127}));
  EXPECT_EQ(f->info("e.i32").dtype, DType::I32);
  EXPECT_EQ(f->read_f32("e.i32").data, (std::vector<float>{-7, 1 << 20}));
}

TEST(Safetensors, RejectsTruncatedFile) {
  test::TempDir dir;
  const auto path = dir.file("t.safetensors");
  std::ofstream(path, std::ios::binary) << "abc";
  expect_input_error(path, {"truncated"});
}

TEST(Safetensors, RejectsHeaderLengthPastEnd) {
  test::TempDir dir;
  const auto path = dir.file("t.safetensors");
  write_raw(path, "{}", {}, 1000);
  expect_input_error(path, {"header length 1000"});
}

TEST(Safetensors, RejectsBadJson) {
  test::TempDir dir;
  const auto path = dir.file("t.safetensors");
  write_raw(path, R"({"a": {"dtype": "F32",)", {});
  expect_input_error(path, {"not valid JSON"});
}

TEST(Safetensors, RejectsOffsetsPastEnd) {
  test::TempDir dir;
  const auto path = dir.file("t.safetensors");
  write_raw(path, R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", std::vector<uint8_t>(8));
  expect_input_error(path, {"'w'", "past the end"});
}

TEST(Safetensors, RejectsOverlappingRanges) {
  test::TempDir dir;
  const auto path = dir.file("t.safetensors");
  write_raw(path,
            R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
            std::vector<uint8_t>(12));
  expect_input_error(path, {"overlaps"});
}

TEST(Safetensors, RejectsUnknownDtype) {
  test::TempDir dir;
  const auto path = dir.file("t.safetensors");
  write_raw(path, R"({"q": {"dtype": "F8_E9M9", "shape": [2], "data_offsets": [0, 2]}})", std::vector<uint8_t>(2));
  expect_input_error(path, {"'q'", "unknown dtype 'F8_E9M9'"});
}

TEST(Safetensors, RejectsShapeSizeMismatch) {
  test::TempDir dir;
  const auto path = dir.file("t.safetensors");
  write_raw(path, R"({"m": {"dtype": "F16", "shape": [3, 3], "data_offsets": [0, 16]}})", std::vector<uint8_t>(16));
  expect_input_error(path, {"'m'", "needs 18"});
}

TEST(Safetensors, RejectsMissingFields) {
  test::TempDir dir;
  const auto path = dir.file("t.safetensors");
  write_raw(path, R"({"m": {"dtype": "F16", "data_offsets": [0, 2]}})", std::vector<uint8_t>(2));
  expect_input_error(path, {"'m'", "'shape'"});
}

// Found by fuzzing: reading an empty tensor passed null pointers to memcpy (UB).
TEST(Safetensors, EmptyTensorsReadAsEmpty) {
  test::TempDir dir;
  const std::string path = dir.file("e.safetensors");
  write_raw(path, R"({"e":{"dtype":"F32","shape":[0,4],"data_offsets":[0,0]}})", {});
  const auto f = SafetensorsFile::open(path);
  const TensorF32 t = f->read_f32("e");
  EXPECT_TRUE(t.data.empty());
  EXPECT_EQ(t.shape, (std::vector<int64_t>{0, 4}));
}

// Found by fuzzing: a shape whose size overflows 64 bits wrapped around (signed
// overflow, undefined) and could then match small data_offsets.
TEST(Safetensors, RejectsShapesWhoseSizeOverflows) {
  test::TempDir dir;
  const std::string path = dir.file("o.safetensors");
  // 2^32 x 2^32 x 2^2 F32 elements wrap to 0 bytes modulo 2^64.
  write_raw(path, R"({"x":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,0]}})", {});
  expect_input_error(path, {"'x'", "more than 2^64 bytes"});
}

TEST(Checkpoint, IndexMayNotPointOutsideTheModelDirectory) {
  for (const char* shard : {"../model.safetensors", "/etc/passwd", "a/../../b.safetensors", ""}) {
    const std::string index = fmt::format(R"({{"weight_map": {{"w": "{}"}}}})", shard);
    try {
      parse_safetensors_index(index, "m/model.safetensors.index.json");
      ADD_FAILURE() << "accepted shard " << shard;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Input);
      EXPECT_NE(std::string(e.what()).find("m/model.safetensors.index.json"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(parse_safetensors_index(R"({"weight_map": {"w": "sub/x.safetensors"}})", "i").at("w"),
            "sub/x.safetensors");
}

TEST(Checkpoint, ReadsTwoShardsThroughIndex) {
  test::TempDir dir;
  SafetensorsWriter a, b;
  const std::vector<float> x{1, 2, 3, 4}, y{5, 6};
  a.add_f32("model.x", {2, 2}, x);
  b.add_f32("model.y", {2}, y);
  a.write(dir.file("model-00001-of-00002.safetensors"));
  b.write(dir.file("model-00002-of-00002.safetensors"));
  std::ofstream(dir.file("model.safetensors.index.json"))
      << R"({"metadata": {"total_size": 24}, "weight_map": {
             "model.x": "model-00001-of-00002.safetensors",
             "model.y": "model-00002-of-00002.safetensors"}})";
  const auto ckpt = Checkpoint::open(dir.path().string());
  EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"model.x", "model.y"}));
  EXPECT_EQ(ckpt.read_f32("model.x").data, x);
  EXPECT_EQ(ckpt.read_f32("model.y").data, y);
  EXPECT_NE(ckpt.file_of("model.y").find("00002"), std::string::npos);
}

TEST(Checkpoint, IndexNamingAMissingTensorIsAnError) {
  test::TempDir dir;
  SafetensorsWriter a;
  const std::vector<float> x{1};
  a.add_f32("model.x", {1}, x);
  a.write(dir.file("s1.safetensors"));
  std::ofstream(dir.file("model.safetensors.index.json"))
      << R"({"weight_map": {"model.x": "s1.safetensors", "model.z": "s1.safetensors"}})";
  try {
    Checkpoint::open(dir.path().string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'model.z'"), std::string::npos) << e.what();
  }
}

TEST(Checkpoint, ReadsStories260K) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  const auto ckpt = Checkpoint::open(test::shared_path("models/stories260K"));
  const auto& info = ckpt.info("model.layers.0.mlp.down_proj.weight");
  EXPECT_EQ(info.shape, (std::vector<int64_t>{64, 172}));
  EXPECT_EQ(info.dtype, DType::F32);
}

}  // namespace
}  // namespace amlq
