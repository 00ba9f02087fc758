#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "core/error.h"
#include "core/fp16.h"
#include "io/safetensors.h"
#include "tests/test_util.h"

namespace amlq {
namespace {

namespace fs = std::filesystem;

std::set<std::string> files_in(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// U8 tensors of the given byte sizes, named t0, t1, ...
std::vector<TensorDecl> byte_tensors(const std::vector<int64_t>& sizes) {
  std::vector<TensorDecl> out;
  for (size_t i = 0; i < sizes.size(); ++i) out.push_back({fmt::format("t{}", i), DType::U8, {sizes[i]}});
  return out;
}

ShardedSafetensorsWriter::Options max_bytes(uint64_t bytes) {
  ShardedSafetensorsWriter::Options o;
  o.max_shard_bytes = bytes;
  o.sync = false;
  return o;
}

TEST(ShardedSafetensors, ShardsLikeHuggingFace) {
  test::TempDir dir;
  // huggingface_hub's docstring example: [6, 6, 2, 6, 2, 2] at 10 -> [6], [6+2], [6+2+2].
  ShardedSafetensorsWriter w(dir.path().string(), byte_tensors({6, 6, 2, 6, 2, 2}), max_bytes(10));
  ASSERT_EQ(w.shards().size(), 3u);
  EXPECT_EQ(w.shards()[0].tensors, (std::vector<size_t>{0}));
  EXPECT_EQ(w.shards()[1].tensors, (std::vector<size_t>{1, 2}));
  EXPECT_EQ(w.shards()[2].tensors, (std::vector<size_t>{3, 4, 5}));
  EXPECT_EQ(w.shards()[0].file_name, "model-00001-of-00003.safetensors");
  EXPECT_EQ(w.shards()[2].file_name, "model-00003-of-00003.safetensors");
  EXPECT_EQ(w.total_bytes(), 24u);
  EXPECT_TRUE(w.sharded());
}

TEST(ShardedSafetensors, TensorLargerThanTheLimitGetsItsOwnShardAheadOfTheOpenOne) {
  test::TempDir dir;
  // As huggingface_hub: the oversized t1 is appended as a shard at once, before
  // the shard t0 is accumulating in.
  ShardedSafetensorsWriter w(dir.path().string(), byte_tensors({3, 25, 4, 5}), max_bytes(10));
  ASSERT_EQ(w.shards().size(), 3u);
  EXPECT_EQ(w.shards()[0].tensors, (std::vector<size_t>{1}));
  EXPECT_EQ(w.shards()[1].tensors, (std::vector<size_t>{0, 2}));
  EXPECT_EQ(w.shards()[2].tensors, (std::vector<size_t>{3}));
}

TEST(ShardedSafetensors, OneShardIsModelSafetensorsWithoutIndex) {
  test::TempDir dir;
  {
    ShardedSafetensorsWriter w(dir.path().string(), {{"b", DType::F32, {2}}, {"a", DType::F32, {3}}}, max_bytes(1000));
    EXPECT_FALSE(w.sharded());
    EXPECT_EQ(w.shards()[0].file_name, "model.safetensors");
    const std::vector<float> a{1, 2, 3}, b{4, 5};
    w.write_f32("a", 0, a);
    w.write_f32("b", 0, b);
    w.finish();
  }
  EXPECT_EQ(files_in(dir.path()), (std::set<std::string>{"model.safetensors"}));
  const Checkpoint ckpt = Checkpoint::open(dir.path().string());
  EXPECT_EQ(ckpt.read_f32("a").data, (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(ckpt.read_f32("b").data, (std::vector<float>{4, 5}));
}

// Random bf16 tensors written in shuffled pieces from several threads, read
// back through Checkpoint bit for bit.
TEST(ShardedSafetensors, RoundTripThroughCheckpointBitExact) {
  test::TempDir dir;
  std::mt19937 rng(7);
  std::vector<TensorDecl> decls;
  std::vector<std::vector<uint16_t>> values;
  for (int i = 0; i < 23; ++i) {
    const int64_t rows = 1 + static_cast<int64_t>(rng() % 40), cols = 1 + static_cast<int64_t>(rng() % 300);
    decls.push_back({fmt::format("model.layers.{}.w", i), DType::BF16, {rows, cols}});
    std::normal_distribution<float> dist(0.0f, 3.0f);
    std::vector<uint16_t> v(static_cast<size_t>(rows * cols));
    for (auto& x : v) x = float_to_bf16(dist(rng));
    values.push_back(std::move(v));
  }
  decls.push_back({"empty", DType::BF16, {0, 5}});
  values.emplace_back();

  ShardedSafetensorsWriter w(dir.path().string(), decls, max_bytes(20000));
  ASSERT_GT(w.shards().size(), 3u);
  struct Piece {
    size_t tensor;
    uint64_t offset, size;
  };
  std::vector<Piece> pieces;
  for (size_t t = 0; t < decls.size(); ++t) {
    const uint64_t n = decls[t].nbytes();
    for (uint64_t off = 0; off < n;) {
      const uint64_t size = std::min<uint64_t>(n - off, 2 * (1 + rng() % 700));
      pieces.push_back({t, off, size});
      off += size;
    }
  }
  std::shuffle(pieces.begin(), pieces.end(), rng);
  std::vector<std::thread> threads;
  for (int k = 0; k < 3; ++k)
    threads.emplace_back([&, k] {
      for (size_t p = static_cast<size_t>(k); p < pieces.size(); p += 3) {
        const auto bytes = std::as_bytes(std::span(values[pieces[p].tensor]));
        w.write(pieces[p].tensor, pieces[p].offset, bytes.subspan(pieces[p].offset, pieces[p].size));
      }
    });
  for (auto& t : threads) t.join();
  // Nothing under a final name before finish().
  for (const auto& name : files_in(dir.path())) EXPECT_NE(name.find(".tmp."), std::string::npos) << name;
  w.finish();

  const auto files = files_in(dir.path());
  EXPECT_EQ(files.size(), w.shards().size() + 1);
  for (const auto& name : files) EXPECT_EQ(name.find(".tmp."), std::string::npos) << name;
  const auto index = read_json(dir.path() / "model.safetensors.index.json");
  uint64_t total = 0;
  for (const auto& d : decls) total += d.nbytes();
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
  EXPECT_EQ(index["weight_map"].size(), decls.size());

  std::map<size_t, std::string> file_of;
  for (const auto& shard : w.shards())
    for (size_t t : shard.tensors) file_of[t] = shard.file_name;
  const Checkpoint ckpt = Checkpoint::open(dir.path().string());
  ASSERT_EQ(ckpt.names().size(), decls.size());
  for (size_t t = 0; t < decls.size(); ++t) {
    const auto raw = ckpt.raw(decls[t].name);
    ASSERT_EQ(raw.size(), decls[t].nbytes()) << decls[t].name;
    // std::equal, not memcmp: a zero-element tensor has no data pointer (UBSan: null argument).
    const auto expected = std::as_bytes(std::span(values[t]));
    EXPECT_TRUE(std::equal(raw.begin(), raw.end(), expected.begin(), expected.end())) << decls[t].name;
    EXPECT_EQ(ckpt.info(decls[t].name).shape, decls[t].shape);
    EXPECT_EQ(ckpt.info(decls[t].name).dtype, DType::BF16);
    EXPECT_EQ(fs::path(ckpt.file_of(decls[t].name)).filename().string(), file_of.at(t));
    EXPECT_EQ(index["weight_map"][decls[t].name], file_of.at(t));
  }
}

TEST(ShardedSafetensors, ShardHeaderIsSafetensorsLayout) {
  test::TempDir dir;
  ShardedSafetensorsWriter w(dir.path().string(),
                             {{"z", DType::BF16, {3}}, {"a", DType::BF16, {2}}, {"m", DType::F32, {1}}},
                             max_bytes(1 << 20));
  w.write_f32("z", 0, std::vector<float>{1, 2, 3});
  w.write_f32("a", 0, std::vector<float>{4, 5});
  w.write_f32("m", 0, std::vector<float>{6});
  w.finish();
  std::ifstream in(dir.path() / "model.safetensors", std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  EXPECT_EQ((8 + n) % 8, 0u);
  std::string text(n, '\0');
  in.read(text.data(), static_cast<std::streamsize>(n));
  // __metadata__ first, then the data order: larger dtypes first, then by name.
  const auto meta = text.find("\"__metadata__\":{\"format\":\"pt\"}");
  const auto m = text.find("\"m\""), a = text.find("\"a\""), z = text.find("\"z\"");
  EXPECT_EQ(meta, 1u) << text;
  EXPECT_LT(m, a);
  EXPECT_LT(a, z);
  const auto header = nlohmann::json::parse(text);
  EXPECT_EQ(header["m"]["data_offsets"], nlohmann::json({0, 4}));
  EXPECT_EQ(header["a"]["data_offsets"], nlohmann::json({4, 8}));
  EXPECT_EQ(header["z"]["data_offsets"], nlohmann::json({8, 14}));
}

TEST(ShardedSafetensors, WriteF32ConvertsToEachDtype) {
  test::TempDir dir;
  const std::vector<float> v{1.0f, -2.5f, 3.14159f, 65504.0f, 1e-3f};
  {
    ShardedSafetensorsWriter w(dir.path().string(),
                               {{"bf", DType::BF16, {5}}, {"h", DType::F16, {5}}, {"f", DType::F32, {5}}},
                               max_bytes(1 << 20));
    for (const char* name : {"bf", "h", "f"}) {
      w.write_f32(name, 0, std::span(v).first(2));
      w.write_f32(name, 2, std::span(v).subspan(2));
    }
    w.finish();
  }
  const Checkpoint ckpt = Checkpoint::open(dir.path().string());
  for (size_t i = 0; i < v.size(); ++i) {
    EXPECT_EQ(ckpt.read_f32("bf").data[i], bf16_to_float(float_to_bf16(v[i])));
    EXPECT_EQ(ckpt.read_f32("h").data[i], fp16_to_float(float_to_fp16(v[i])));
    EXPECT_EQ(ckpt.read_f32("f").data[i], v[i]);
  }
}

TEST(ShardedSafetensors, RemovesAnEarlierCheckpointsFilesOnly) {
  test::TempDir dir;
  for (const char* name :
       {"model-00001-of-00003.safetensors", "model-00003-of-00003.safetensors", "model.safetensors.index.json",
        "model.safetensors", "model-00002-of-00003.safetensors.tmp.42", "config.json", "tokenizer.json",
        "model-notes.txt", "other-00001-of-00002.safetensors"})
    std::ofstream(dir.file(name)) << "old";
  ShardedSafetensorsWriter w(dir.path().string(), byte_tensors({4}), max_bytes(100));
  EXPECT_EQ(files_in(dir.path()), (std::set<std::string>{"config.json", "tokenizer.json", "model-notes.txt",
                                                         "other-00001-of-00002.safetensors"}));
}

TEST(ShardedSafetensors, IncompleteTensorFailsAndLeavesNoShard) {
  test::TempDir dir;
  {
    ShardedSafetensorsWriter w(dir.path().string(), byte_tensors({8, 8, 8}), max_bytes(10));
    const std::vector<std::byte> bytes(8, std::byte{1});
    w.write(size_t{0}, 0, bytes);
    w.write(size_t{1}, 0, std::span(bytes).first(5));
    try {
      w.finish();
      FAIL() << "finish() accepted a tensor with 5 of 8 bytes";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Internal);
      EXPECT_NE(std::string(e.what()).find("'t1' received 5 of its 8 bytes"), std::string::npos) << e.what();
    }
  }
  EXPECT_TRUE(files_in(dir.path()).empty());
}

TEST(ShardedSafetensors, DestroyedWithoutFinishRemovesItsTemporaries) {
  test::TempDir dir;
  {
    ShardedSafetensorsWriter w(dir.path().string(), byte_tensors({8, 8}), max_bytes(10));
    w.write(size_t{0}, 0, std::vector<std::byte>(8, std::byte{2}));
    EXPECT_EQ(files_in(dir.path()).size(), 1u);
  }
  EXPECT_TRUE(files_in(dir.path()).empty());
}

TEST(ShardedSafetensors, MisuseIsAnInternalError) {
  test::TempDir dir;
  ShardedSafetensorsWriter w(dir.path().string(), byte_tensors({8}), max_bytes(10));
  const std::vector<std::byte> bytes(4, std::byte{3});
  EXPECT_THROW(w.write("nope", 0, bytes), Error);
  EXPECT_THROW(w.write(size_t{0}, 6, bytes), Error);  // past the end
  w.write(size_t{0}, 0, bytes);
  w.write(size_t{0}, 4, bytes);
  EXPECT_THROW(w.write(size_t{0}, 0, bytes), Error);  // the shard is complete
  EXPECT_THROW(ShardedSafetensorsWriter(dir.path().string(), {{"a", DType::U8, {1}}, {"a", DType::U8, {1}}}), Error);
}

TEST(ShardedSafetensors, UnwritableShardIsAnOutputErrorNamingTheFile) {
  test::TempDir dir;
  ShardedSafetensorsWriter w(dir.path().string(), byte_tensors({4}), max_bytes(10));
  // A directory where the shard's temporary file should go: open() fails even as root.
  fs::create_directory(dir.path() / ("model.safetensors.tmp." + std::to_string(::getpid())));
  try {
    w.write(size_t{0}, 0, std::vector<std::byte>(4));
    FAIL() << "wrote into a directory";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Output);
    EXPECT_NE(std::string(e.what()).find("model.safetensors.tmp."), std::string::npos) << e.what();
  }
}

TEST(ShardedSafetensors, ParsesByteSizesAsSavePretrained) {
  EXPECT_EQ(parse_byte_size("5GB"), 5'000'000'000u);
  EXPECT_EQ(parse_byte_size("5gb"), 5'000'000'000u);
  EXPECT_EQ(parse_byte_size("1MB"), 1'000'000u);
  EXPECT_EQ(parse_byte_size("500MiB"), 500u << 20);
  EXPECT_EQ(parse_byte_size("2GiB"), 2ull << 30);
  EXPECT_EQ(parse_byte_size("1.5GB"), 1'500'000'000u);
  EXPECT_EQ(parse_byte_size("4096"), 4096u);
  EXPECT_EQ(parse_byte_size(" 10 KB "), 10'000u);
  EXPECT_FALSE(parse_byte_size(""));
  EXPECT_FALSE(parse_byte_size("GB"));
  EXPECT_FALSE(parse_byte_size("5XB"));
  EXPECT_FALSE(parse_byte_size("0"));
  EXPECT_FALSE(parse_byte_size("-5GB"));
  EXPECT_FALSE(parse_byte_size("1.2.3GB"));
}

}  // namespace
}  // namespace amlq
