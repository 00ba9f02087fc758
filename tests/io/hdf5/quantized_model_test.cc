#include "io/hdf5/quantized_model.h"

#include <gtest/gtest.h>
#include <hdf5.h>

#include <bit>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "io/hdf5/model_writer.h"
#include "tests/test_util.h"

namespace amlq {
namespace {

namespace fs = std::filesystem;

// Arbitrary but reproducible contents: the format must round-trip any bits.
struct Lcg {
  uint64_t state;
  uint32_t next() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(state >> 32);
  }
  template <typename T>
  std::vector<T> fill(int64_t n) {
    std::vector<T> v(static_cast<size_t>(n));
    for (auto& x : v) x = static_cast<T>(next());
    return v;
  }
};

PackedPart make_part(Lcg& rng, int rows, int col_begin, int col_end, int bits, int group) {
  PackedPart p;
  p.col_begin = col_begin;
  p.col_end = col_end;
  p.bits = bits;
  p.group = group;
  p.num_groups = (col_end - col_begin + group - 1) / group;
  p.codes = rng.fill<uint32_t>(int64_t{rows} * packed::words_per_row(col_end - col_begin, bits));
  p.scales = rng.fill<uint16_t>(int64_t{rows} * p.num_groups);
  p.zeros = rng.fill<uint32_t>(int64_t{rows} * packed::words_per_row(p.num_groups, bits));
  return p;
}

std::vector<int32_t> shuffled(Lcg& rng, int n) {
  std::vector<int32_t> perm(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) perm[i] = i;
  for (int i = n - 1; i > 0; --i) std::swap(perm[i], perm[rng.next() % static_cast<uint32_t>(i + 1)]);
  return perm;
}

template <typename T>
PassthroughTensor passthrough(Lcg& rng, std::string name, DType dtype, std::vector<int64_t> shape) {
  PassthroughTensor t{std::move(name), dtype, std::move(shape), {}};
  const auto values = rng.fill<T>(t.numel());
  t.data.resize(values.size() * sizeof(T));
  std::memcpy(t.data.data(), values.data(), t.data.size());
  return t;
}

QuantizedModel make_model() {
  Lcg rng{42};
  QuantizedModel m;
  m.header.tool_version = "0.1.0-test";
  m.header.source_model = "/models/tiny-llama";
  m.header.config_json = R"({"hidden_size": 128, "num_hidden_layers": 2})";
  m.header.search_method = "amlq-minmax";
  m.header.calibration = "wikitext2 train, 4 x 64 tokens, seed 0";
  m.header.quantizer = "gptq";
  m.header.lowrank_method = "l2qer";
  m.header.extra_json = R"({"damp": 0.01})";
  m.header.target_bpw = 3.5;
  m.header.achieved_bpw = 3.4871;

  // Two parts (4-bit salient columns, 3-bit rest), act-order, fp16 factors, bias.
  PackedLinear q;
  q.name = "model.layers.0.self_attn.q_proj";
  q.rows = 8;
  q.cols = 128;
  q.spec.parts = {{4, 16, 0.25}, {3, 32, 0.75}};
  q.perm = shuffled(rng, q.cols);
  q.parts = {make_part(rng, 8, 0, 32, 4, 16), make_part(rng, 8, 32, 128, 3, 32)};
  q.lowrank = LowRankMethod::L2qer;
  q.rank = 4;
  q.a_fp16 = rng.fill<uint16_t>(8 * 4);
  q.b_fp16 = rng.fill<uint16_t>(4 * 128);
  q.bias = {1.5f, -2.25f, 0.f, 3e-8f, -1e30f, 7.f, 8.f, 9.f};
  q.eps = 1.25e-3;
  q.bpw = 4.1875;

  // One whole-row group of 5-bit codes (straddling words), int8 factors, no perm.
  PackedLinear down;
  down.name = "model.layers.0.mlp.down_proj";
  down.rows = 16;
  down.cols = 40;
  down.spec.parts = {{5, 0, 1.0}};
  down.spec.act_order = false;
  down.parts = {make_part(rng, 16, 0, 40, 5, 40)};
  down.lowrank = LowRankMethod::Whiten;
  down.factor_format = FactorFormat::Int8;
  down.rank = 3;
  down.a_int8 = rng.fill<int8_t>(16 * 3);
  down.a_scales = rng.fill<uint16_t>(16);
  down.b_int8 = rng.fill<int8_t>(3 * 40);
  down.b_scales = rng.fill<uint16_t>(3);
  down.eps = 0.5;
  down.bpw = 6.0;

  // 2-bit symmetric, static groups with a permutation, no low-rank.
  PackedLinear up;
  up.name = "model.layers.1.mlp.up_proj";
  up.rows = 5;
  up.cols = 33;
  up.spec.parts = {{2, 11, 1.0}};
  up.spec.symmetric = true;
  up.spec.static_groups = true;
  up.perm = shuffled(rng, up.cols);
  up.parts = {make_part(rng, 5, 0, 33, 2, 11)};
  up.eps = 0.03;
  up.bpw = 3.4;
  m.linears = {q, down, up};

  m.passthrough.push_back(passthrough<uint32_t>(rng, "model.embed_tokens.weight", DType::F32, {10, 4}));
  m.passthrough.push_back(passthrough<uint16_t>(rng, "model.norm.weight", DType::F16, {4}));
  m.passthrough.push_back(passthrough<uint16_t>(rng, "lm_head.weight", DType::BF16, {6, 4}));
  m.passthrough.push_back(passthrough<uint32_t>(rng, "model.rope.theta", DType::F32, {}));  // scalar

  LayerMeasurement lq{q.name, q.rows, q.cols, {}};
  lq.candidates.push_back({QuantSpec{}, 0, 4.125, 2e-3});
  lq.candidates.push_back({q.spec, 4, 4.1875, 1.25e-3});
  QuantSpec third;
  third.parts = {{8, 32, 1.0 / 3.0}, {2, 64, 2.0 / 3.0}};
  lq.candidates.push_back({third, 8, 3.3, 7e-2});
  LayerMeasurement ldown{down.name, down.rows, down.cols, {}};  // no candidates
  LayerMeasurement lup{up.name, up.rows, up.cols, {}};
  lup.candidates.push_back({up.spec, 0, 3.4, 0.03});
  // Loss sensitivities (pipeline/sensitivity.h) ride along when measured.
  lq.alpha = 0.75;
  lq.alpha_linearity = 1.03;
  ldown.alpha = 1e-3;
  lup.alpha = 2.5;
  lup.alpha_linearity = 0.97;
  m.measurements = {lq, ldown, lup};
  return m;
}

void expect_same(const PackedLinear& a, const PackedLinear& b) {
  SCOPED_TRACE(a.name);
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.rows, b.rows);
  EXPECT_EQ(a.cols, b.cols);
  EXPECT_EQ(a.spec, b.spec);
  EXPECT_EQ(a.perm, b.perm);
  ASSERT_EQ(a.parts.size(), b.parts.size());
  for (size_t p = 0; p < a.parts.size(); ++p) {
    EXPECT_EQ(a.parts[p].col_begin, b.parts[p].col_begin);
    EXPECT_EQ(a.parts[p].col_end, b.parts[p].col_end);
    EXPECT_EQ(a.parts[p].bits, b.parts[p].bits);
    EXPECT_EQ(a.parts[p].group, b.parts[p].group);
    EXPECT_EQ(a.parts[p].num_groups, b.parts[p].num_groups);
    EXPECT_EQ(a.parts[p].codes, b.parts[p].codes);
    EXPECT_EQ(a.parts[p].scales, b.parts[p].scales);
    EXPECT_EQ(a.parts[p].zeros, b.parts[p].zeros);
  }
  EXPECT_EQ(a.lowrank, b.lowrank);
  EXPECT_EQ(a.factor_format, b.factor_format);
  EXPECT_EQ(a.rank, b.rank);
  EXPECT_EQ(a.a_fp16, b.a_fp16);
  EXPECT_EQ(a.b_fp16, b.b_fp16);
  EXPECT_EQ(a.a_int8, b.a_int8);
  EXPECT_EQ(a.a_scales, b.a_scales);
  EXPECT_EQ(a.b_int8, b.b_int8);
  EXPECT_EQ(a.b_scales, b.b_scales);
  // Bitwise (a NaN bias must round-trip too), and without memcmp: an empty bias has no data pointer.
  ASSERT_EQ(a.bias.size(), b.bias.size());
  for (size_t i = 0; i < a.bias.size(); ++i)
    EXPECT_EQ(std::bit_cast<uint32_t>(a.bias[i]), std::bit_cast<uint32_t>(b.bias[i])) << "bias " << i;
  EXPECT_EQ(a.eps, b.eps);
  EXPECT_EQ(a.bpw, b.bpw);
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The Input error message read_quantized_model throws for `path`.
std::string read_error(const std::string& path) {
  try {
    read_quantized_model(path);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    return e.what();
  }
  ADD_FAILURE() << path << " was read without error";
  return "";
}

// Edits a written file with the raw HDF5 API to make it malformed.
void edit_file(const std::string& path, const std::function<void(hid_t)>& edit) {
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  edit(file);
  H5Fclose(file);
}

TEST(QuantizedModelFile, RoundTripIsBitExact) {
  test::TempDir dir;
  const QuantizedModel model = make_model();
  write_quantized_model(dir.file("m.h5"), model);
  const QuantizedModel back = read_quantized_model(dir.file("m.h5"));

  EXPECT_EQ(back.header, model.header);
  ASSERT_EQ(back.linears.size(), model.linears.size());
  for (size_t i = 0; i < model.linears.size(); ++i) expect_same(model.linears[i], back.linears[i]);
  EXPECT_EQ(back.passthrough, model.passthrough);
  EXPECT_EQ(back.measurements, model.measurements);
}

TEST(QuantizedModelFile, HeaderOnlyReadKeepsShapesAndDropsData) {
  test::TempDir dir;
  const QuantizedModel model = make_model();
  write_quantized_model(dir.file("m.h5"), model);
  const QuantizedModel meta = read_quantized_model(dir.file("m.h5"), /*load_tensors=*/false);

  ASSERT_EQ(meta.linears.size(), 3u);
  const PackedLinear& q = meta.linears[0];
  EXPECT_EQ(q.name, "model.layers.0.self_attn.q_proj");
  EXPECT_EQ(q.spec, model.linears[0].spec);
  EXPECT_EQ(q.rank, 4);
  ASSERT_EQ(q.parts.size(), 2u);
  EXPECT_EQ(q.parts[1].bits, 3);
  EXPECT_TRUE(q.parts[0].codes.empty());
  EXPECT_TRUE(q.perm.empty());
  EXPECT_TRUE(q.a_fp16.empty());
  ASSERT_EQ(meta.passthrough.size(), 4u);
  EXPECT_EQ(meta.passthrough[2].shape, (std::vector<int64_t>{6, 4}));
  EXPECT_EQ(meta.passthrough[2].dtype, DType::BF16);
  EXPECT_TRUE(meta.passthrough[2].data.empty());
  EXPECT_EQ(meta.measurements, model.measurements);
}

TEST(QuantizedModelFile, EqualModelsGiveByteIdenticalFilesWhateverTheWriteOrder) {
  test::TempDir dir;
  const QuantizedModel model = make_model();
  write_quantized_model(dir.file("a.h5"), model);
  write_quantized_model(dir.file("b.h5"), model);
  const std::string a = file_bytes(dir.file("a.h5"));
  EXPECT_GT(a.size(), 0u);
  EXPECT_TRUE(a == file_bytes(dir.file("b.h5")));

  // As a distributed writer would: layout first, then tensors in another order.
  {
    h5::File file = h5::create_model_file(dir.file("c.h5"));
    h5::create_layout(file.get(), h5::layout_of(model));
    for (auto it = model.passthrough.rbegin(); it != model.passthrough.rend(); ++it)
      h5::write_passthrough(file.get(), *it);
    for (auto it = model.linears.rbegin(); it != model.linears.rend(); ++it) h5::write_linear(file.get(), *it);
    file.close();
  }
  EXPECT_TRUE(a == file_bytes(dir.file("c.h5")));
}

TEST(QuantizedModelFile, H5dumpReadsTheLayout) {
  test::TempDir dir;
  write_quantized_model(dir.file("m.h5"), make_model());
  const auto r = test::run_shell("h5dump -H " + dir.file("m.h5"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* expected : {"GROUP \"model.layers.0.self_attn.q_proj\"", "DATASET \"codes\"", "\"format_version\"",
                               "DATASET \"lm_head.weight\"", "GROUP \"candidate_parts\""})
    EXPECT_NE(r.output.find(expected), std::string::npos) << expected;
  const auto codes =
      test::run_shell("h5dump -d /linears/model.layers.0.mlp.down_proj/parts/0/codes -H " + dir.file("m.h5"));
  EXPECT_NE(codes.output.find("( 16, 7 )"), std::string::npos) << codes.output;  // 40 x 5 bits = 7 words
  const auto dtype = test::run_shell("h5dump -a /passthrough/lm_head.weight/dtype " + dir.file("m.h5"));
  EXPECT_NE(dtype.output.find("\"bfloat16\""), std::string::npos) << dtype.output;
}

TEST(QuantizedModelFile, MissingOrNonHdf5FilesAreOneLineInputErrors) {
  test::TempDir dir;
  EXPECT_NE(read_error(dir.file("absent.h5")).find("absent.h5: no such file"), std::string::npos);
  std::ofstream(dir.file("text.h5")) << "not hdf5\n";
  EXPECT_NE(read_error(dir.file("text.h5")).find("text.h5: not an HDF5 file"), std::string::npos);
}

TEST(QuantizedModelFile, ForeignOrNewerFilesAreRejected) {
  test::TempDir dir;
  {
    const hid_t file = H5Fcreate(dir.file("other.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(file, 0);
    H5Fclose(file);
  }
  EXPECT_NE(read_error(dir.file("other.h5")).find("not an amlq model file (the root attribute 'format' is missing)"),
            std::string::npos);

  write_quantized_model(dir.file("m.h5"), make_model());
  edit_file(dir.file("m.h5"), [](hid_t file) {
    ASSERT_GE(H5Adelete(file, "format_version"), 0);
    const uint32_t version = packed::kFormatVersion + 1;
    const hid_t space = H5Screate(H5S_SCALAR);
    const hid_t attr = H5Acreate2(file, "format_version", H5T_STD_U32LE, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(attr, H5T_NATIVE_UINT32, &version);
    H5Aclose(attr);
    H5Sclose(space);
  });
  EXPECT_NE(
      read_error(dir.file("m.h5")).find(fmt::format("format_version {} is not readable", packed::kFormatVersion + 1)),
      std::string::npos);
}

TEST(QuantizedModelFile, MissingDatasetOrWrongShapeNamesTheObject) {
  test::TempDir dir;
  const std::string zeros = "/linears/model.layers.0.self_attn.q_proj/parts/1/zeros";
  write_quantized_model(dir.file("m.h5"), make_model());
  edit_file(dir.file("m.h5"), [&](hid_t file) { ASSERT_GE(H5Ldelete(file, zeros.c_str(), H5P_DEFAULT), 0); });
  const std::string missing = read_error(dir.file("m.h5"));
  EXPECT_NE(missing.find(dir.file("m.h5") + ": " + zeros + " is missing"), std::string::npos) << missing;

  // The same with header-only reads: validation does not depend on loading data.
  try {
    read_quantized_model(dir.file("m.h5"), false);
    ADD_FAILURE() << "header-only read accepted a missing dataset";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(zeros), std::string::npos);
  }

  edit_file(dir.file("m.h5"), [&](hid_t file) {
    const hsize_t dims[2] = {8, 5};
    const hid_t space = H5Screate_simple(2, dims, nullptr);
    const hid_t ds = H5Dcreate2(file, zeros.c_str(), H5T_STD_U32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(ds);
    H5Sclose(space);
  });
  const std::string shape = read_error(dir.file("m.h5"));
  EXPECT_NE(shape.find(zeros + " has shape [8, 5], expected [8, 1]"), std::string::npos) << shape;
}

// Found by fuzzing (target model_h5, regression input regress-perm-out-of-range):
// permutation entries were used as column indices unchecked, so a damaged perm
// wrote outside the dequantized matrix.
TEST(QuantizedModelFile, PermutationMustBeAPermutation) {
  test::TempDir dir;
  const std::string perm = "/linears/model.layers.0.self_attn.q_proj/perm";
  for (const int32_t bad : {128, -1, 5}) {  // entry 1: out of range, negative, a duplicate of entry 0
    write_quantized_model(dir.file("m.h5"), make_model());
    edit_file(dir.file("m.h5"), [&](hid_t file) {
      const hid_t ds = H5Dopen2(file, perm.c_str(), H5P_DEFAULT);
      std::vector<int32_t> values(128);
      ASSERT_GE(H5Dread(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0);
      values[0] = 5;
      values[1] = bad;
      ASSERT_GE(H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0);
      H5Dclose(ds);
    });
    const std::string message = read_error(dir.file("m.h5"));
    EXPECT_NE(message.find(perm + " is not a permutation of 0..127"), std::string::npos) << message;
  }
}

TEST(QuantizedModelFile, FailedWritesLeaveNoFile) {
  test::TempDir dir;
  QuantizedModel bad = make_model();
  bad.linears[1].parts[0].codes.pop_back();
  try {
    write_quantized_model(dir.file("m.h5"), bad);
    ADD_FAILURE() << "an inconsistent model was written";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0.mlp.down_proj"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::is_empty(dir.path()));

  try {
    write_quantized_model(dir.file("no/such/dir/m.h5"), make_model());
    ADD_FAILURE() << "wrote into a missing directory";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Output);
  }

  // A failed rewrite keeps the previous complete file.
  write_quantized_model(dir.file("m.h5"), make_model());
  EXPECT_THROW(write_quantized_model(dir.file("m.h5"), bad), Error);
  EXPECT_EQ(read_quantized_model(dir.file("m.h5")).linears.size(), 3u);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);
}

TEST(QuantizedModelFile, InspectPrintsHeaderLayersAndTotals) {
  test::TempDir dir;
  write_quantized_model(dir.file("m.h5"), make_model());
  const auto r = test::run_amlq("inspect " + dir.file("m.h5"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* expected : {"/models/tiny-llama", "target 3.5000, achieved 3.4871", "amlq-minmax", "wikitext2 train",
                               "model.layers.0.self_attn.q_proj", "8x128", "25%4b-g16+75%3b-g32", "4b/g16x32 3b/g32x96",
                               "3 linears, 1,829 quantized parameters", "passthrough  4 tensors, 69 parameters",
                               "3 layers, 4 candidate configurations"})
    EXPECT_NE(r.output.find(expected), std::string::npos) << expected << "\n" << r.output;
  // (8*128*4.1875 + 16*40*6 + 5*33*3.4) / 1829 = 4.75068
  EXPECT_NE(r.output.find("average 4.7507 bpw"), std::string::npos) << r.output;

  std::ofstream(dir.file("bad.h5")) << "x";
  const auto bad = test::run_amlq("inspect " + dir.file("bad.h5"));
  EXPECT_EQ(bad.exit_code, 3) << bad.output;
  EXPECT_NE(bad.output.find("bad.h5: not an HDF5 file"), std::string::npos) << bad.output;
}

}  // namespace
}  // namespace amlq
