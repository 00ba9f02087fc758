#include <gtest/gtest.h>

#include <fstream>
#include <numeric>
#include <random>

#include "core/error.h"
#include "io/tokenizer/dataset.h"
#include "tests/test_util.h"

namespace amlq {
namespace {

using Ids = std::vector<int32_t>;

// Token = byte + 1, BOS = 0: enough to check how text datasets are tokenized.
class ByteTokenizer final : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text, bool add_special) const override {
    Ids ids;
    if (add_special) ids.push_back(0);
    for (const char c : text) ids.push_back(1 + static_cast<unsigned char>(c));
    return ids;
  }
  std::string decode(std::span<const int32_t>) const override { return {}; }
  int vocab_size() const override { return 257; }
  int bos_id() const override { return 0; }
  int eos_id() const override { return -1; }
  std::string description() const override { return "bytes"; }
};

template <class T>
std::string write_raw(const test::TempDir& dir, const std::string& name, const std::vector<T>& values,
                      const std::string& prefix = "") {
  std::ofstream f(dir.file(name), std::ios::binary);
  f << prefix;
  f.write(reinterpret_cast<const char*>(values.data()), static_cast<std::streamsize>(values.size() * sizeof(T)));
  return dir.file(name);
}

std::string npy_header(const std::string& descr, const std::string& shape) {
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + dict.size() + 1) % 64 != 0) dict += ' ';
  dict += '\n';
  std::string h = "\x93NUMPY";
  h += '\x01';
  h += '\x00';
  h += static_cast<char>(dict.size() & 0xFF);
  h += static_cast<char>(dict.size() >> 8);
  return h + dict;
}

void expect_input_error(const std::function<void()>& fn, std::initializer_list<std::string> needles) {
  try {
    fn();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input);
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "missing '" << n << "' in: " << msg;
  }
}

TEST(Dataset, LoadsIdFilesOfEveryKind) {
  test::TempDir dir;
  EXPECT_EQ(load_token_ids(write_raw<uint16_t>(dir, "a.u16", {1, 65535, 7}), nullptr, 0), (Ids{1, 65535, 7}));
  EXPECT_EQ(load_token_ids(write_raw<uint32_t>(dir, "a.u32", {1, 128255, 7}), nullptr, 128256), (Ids{1, 128255, 7}));
  EXPECT_EQ(load_token_ids(write_raw<uint16_t>(dir, "a.npy", {5, 6}, npy_header("<u2", "(2,)")), nullptr, 10),
            (Ids{5, 6}));
  EXPECT_EQ(load_token_ids(write_raw<uint32_t>(dir, "b.npy", {5, 6, 9}, npy_header("<u4", "(3,)")), nullptr, 10),
            (Ids{5, 6, 9}));
  EXPECT_EQ(load_token_ids(write_raw<int32_t>(dir, "c.npy", {3}, npy_header("<i4", "(1,)")), nullptr, 10), Ids{3});
  EXPECT_EQ(load_token_ids(write_raw<int64_t>(dir, "d.npy", {3, 4}, npy_header("<i8", "(2,)")), nullptr, 10),
            (Ids{3, 4}));
  // Text: the whole file is one string with BOS first.
  std::ofstream(dir.file("t.txt"), std::ios::binary) << "ab\n";
  const ByteTokenizer tok;
  EXPECT_EQ(load_token_ids(dir.file("t.txt"), &tok, 257), (Ids{0, 'a' + 1, 'b' + 1, '\n' + 1}));
}

TEST(Dataset, BadFilesNameTheFileAndPosition) {
  test::TempDir dir;
  const auto u16 = write_raw<uint16_t>(dir, "x.u16", {1, 2, 512, 3});
  expect_input_error([&] { load_token_ids(u16, nullptr, 512); }, {u16, "token id 512 at position 2", "size 512"});
  const auto npy = write_raw<int64_t>(dir, "neg.npy", {1, -4}, npy_header("<i8", "(2,)"));
  expect_input_error([&] { load_token_ids(npy, nullptr, 0); }, {npy, "id -4 at position 1"});
  const auto odd = write_raw<uint8_t>(dir, "odd.u32", {1, 2, 3, 4, 5});
  expect_input_error([&] { load_token_ids(odd, nullptr, 0); }, {odd, "5 bytes", "4-byte"});
  const auto two_d = write_raw<uint16_t>(dir, "m.npy", {1, 2, 3, 4}, npy_header("<u2", "(2, 2)"));
  expect_input_error([&] { load_token_ids(two_d, nullptr, 0); }, {two_d, "1-D", "(2,2)"});
  const auto f32 = write_raw<float>(dir, "f.npy", {1.0f}, npy_header("<f4", "(1,)"));
  expect_input_error([&] { load_token_ids(f32, nullptr, 0); }, {f32, "dtype '<f4'"});
  const auto lying = write_raw<uint16_t>(dir, "l.npy", {1, 2}, npy_header("<u2", "(3,)"));
  expect_input_error([&] { load_token_ids(lying, nullptr, 0); }, {lying, "3 ids", "holds 2"});
  std::ofstream(dir.file("t.txt")) << "hello";
  expect_input_error([&] { load_token_ids(dir.file("t.txt"), nullptr, 0); }, {"t.txt", "needs a tokenizer"});
  expect_input_error([&] { load_token_ids(dir.file("missing.u16"), nullptr, 0); }, {"missing.u16", "cannot open"});
  // A shape that is not a number used to escape as std::invalid_argument (exit 1, not 3).
  const auto nan_shape = write_raw<uint16_t>(dir, "s.npy", {1}, npy_header("<u2", "(x,)"));
  expect_input_error([&] { load_token_ids(nan_shape, nullptr, 0); }, {nan_shape, "(x,)", "is not (N,)"});
  const auto huge_shape = write_raw<uint16_t>(dir, "h.npy", {1}, npy_header("<u2", "(99999999999999999999999,)"));
  expect_input_error([&] { load_token_ids(huge_shape, nullptr, 0); }, {huge_shape, "is not (N,)"});
}

Ids iota_ids(size_t n) {
  Ids ids(n);
  std::iota(ids.begin(), ids.end(), 0);
  return ids;
}

TEST(Calibration, RandomOffsetsAreDeterministicWindows) {
  const Ids ids = iota_ids(1000);
  CalibrationSpec spec;
  spec.num_samples = 16;
  spec.seqlen = 100;
  spec.seed = 42;
  const auto a = sample_calibration(ids, spec);
  const auto b = sample_calibration(ids, spec);
  ASSERT_EQ(a.size(), 16u);
  EXPECT_EQ(a, b);
  for (const auto& s : a) {
    ASSERT_EQ(s.size(), 100u);
    EXPECT_LE(s.front(), 1000 - 100 - 1);  // GPTQ: offset in [0, N - seqlen - 1]
    for (size_t k = 0; k < s.size(); ++k) EXPECT_EQ(s[k], s.front() + static_cast<int32_t>(k));
  }
  // The documented draw: offset = mt19937_64(seed)() % (N - seqlen), the same on every platform.
  std::mt19937_64 rng(42);
  for (const auto& s : a) EXPECT_EQ(static_cast<uint64_t>(s.front()), rng() % 900);
  spec.seed = 43;
  EXPECT_NE(sample_calibration(ids, spec), a);
  // mt19937_64 is fully specified: its 10000th output from the default seed is fixed by the standard.
  std::mt19937_64 standard;
  standard.discard(9999);
  EXPECT_EQ(standard(), 9981545732273789042ull);
}

TEST(Calibration, ShortestDatasetHasOneOffset) {
  const Ids ids = iota_ids(11);
  CalibrationSpec spec{.num_samples = 3, .seqlen = 10, .seed = 5, .random_offsets = true};
  for (const auto& s : sample_calibration(ids, spec)) EXPECT_EQ(s.front(), 0);
  spec.seqlen = 11;
  expect_input_error([&] { sample_calibration(ids, spec); }, {"11 tokens", "seqlen + 1 = 12"});
}

TEST(Calibration, ConsecutiveWindows) {
  const Ids ids = iota_ids(1050);
  CalibrationSpec spec{.num_samples = 10, .seqlen = 100, .seed = 0, .random_offsets = false};
  const auto w = sample_calibration(ids, spec);
  ASSERT_EQ(w.size(), 10u);
  for (size_t i = 0; i < w.size(); ++i) {
    EXPECT_EQ(w[i].front(), static_cast<int32_t>(i * 100));
    EXPECT_EQ(w[i].back(), static_cast<int32_t>(i * 100 + 99));
  }
  EXPECT_EQ(spec.describe(), "10 x 100 tokens, consecutive windows");
  spec.num_samples = 11;
  expect_input_error([&] { sample_calibration(ids, spec); }, {"only 10 whole windows of 100", "11 requested"});
}

}  // namespace
}  // namespace amlq
