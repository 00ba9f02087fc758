// Host-side logic of the CUDA backend; needs no GPU.
#include <gtest/gtest.h>

#include <random>

#include "backend/backend.h"
#include "core/error.h"
#include "kernels/cuda_check.h"
#include "kernels/device_select.h"
#include "kernels/gptq_plan.h"
#include "kernels/launch_geometry.h"
#include "kernels/quant_grid.h"
#include "quant/gptq.h"
#include "quant/quantizer.h"

namespace amlq {
namespace {

using cuda::ColumnBlock;
using cuda::PartPlan;

TEST(LaunchGeometry, ElementwiseBlocksCoverAndCap) {
  EXPECT_EQ(cuda::elementwise_blocks(0), 1);
  EXPECT_EQ(cuda::elementwise_blocks(1), 1);
  EXPECT_EQ(cuda::elementwise_blocks(256), 1);
  EXPECT_EQ(cuda::elementwise_blocks(257), 2);
  EXPECT_EQ(cuda::elementwise_blocks(int64_t{1} << 40), 65535LL * 32);  // grid-stride takes over
  EXPECT_EQ(cuda::warp_per_row_blocks(17, 8), 3);
  EXPECT_EQ(cuda::gemv_chunks_per_row(33), 2);
}

TEST(LaunchGeometry, TokenBucketsHoldTheBatch) {
  for (int t = 1; t <= cuda::kGemvMaxTokens; ++t) {
    const int bucket = cuda::gemv_token_bucket(t);
    EXPECT_GE(bucket, t);
    EXPECT_LT(bucket, 2 * t) << "bucket " << bucket << " wastes registers for " << t;
    EXPECT_TRUE(cuda::gemv_supports_tokens(t));
  }
  EXPECT_FALSE(cuda::gemv_supports_tokens(0));
  EXPECT_FALSE(cuda::gemv_supports_tokens(17));
}

TEST(DeviceSelect, RankMapsModuloDeviceCount) {
  EXPECT_EQ(cuda::device_for_local_rank(0, 4), 0);
  EXPECT_EQ(cuda::device_for_local_rank(5, 4), 1);
  EXPECT_EQ(cuda::device_for_local_rank(3, 1), 0);
  EXPECT_EQ(cuda::device_for_local_rank(2, 0), -1);
  EXPECT_EQ(cuda::device_for_local_rank(-1, 2), -1);
}

TEST(DeviceSelect, FallsBackWithoutDevice) {
  const int count = cuda::cuda_device_count();
  const int selected = select_device_for_local_rank(3);
  if (count == 0) {
    EXPECT_EQ(selected, -1);
    EXPECT_EQ(make_backend("auto")->name(), "cpu");
    try {
      make_backend("cuda");
      FAIL() << "make_backend(\"cuda\") succeeded without a device";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Device);
    }
  } else {
    EXPECT_EQ(selected, 3 % count);
    EXPECT_EQ(make_backend("auto")->name(), "cuda");
  }
}

TEST(CudaCheck, FailuresAreDeviceErrorsNamingTheCall) {
  try {
    AMLQ_CHECK_CUDA(cudaErrorInvalidValue);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Device);
    EXPECT_NE(std::string(e.what()).find("cudaErrorInvalidValue"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("CUDA"), std::string::npos) << e.what();
  }
  try {
    AMLQ_CHECK_CUBLAS(CUBLAS_STATUS_NOT_INITIALIZED);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Device);
    EXPECT_NE(std::string(e.what()).find("cuBLAS"), std::string::npos) << e.what();
  }
  try {
    AMLQ_CHECK_CUSOLVER(CUSOLVER_STATUS_INVALID_VALUE);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Device);
    EXPECT_NE(std::string(e.what()).find("CUSOLVER_STATUS_INVALID_VALUE"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(AMLQ_CHECK_CUDA(cudaSuccess));
}

// The device quantizer (kernels/quant_grid.h) must give the CPU oracle's
// (quant/quantizer.h) scale bits, zeros and codes bit for bit.
TEST(QuantGrid, MatchesCpuQuantizerExactly) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uni(-3.0f, 3.0f);
  std::uniform_real_distribution<float> tiny(-1e-6f, 1e-6f);
  for (int bits = 2; bits <= 8; ++bits) {
    const int maxq = (1 << bits) - 1;
    for (bool sym : {false, true}) {
      for (int trial = 0; trial < 400; ++trial) {
        float a = trial % 7 == 0 ? tiny(rng) : uni(rng);
        float b = trial % 11 == 0 ? a : uni(rng);
        if (trial % 13 == 0) a = b = 0.0f;
        if (trial % 17 == 0) b = std::fabs(b) * 3e4f;  // near the fp16 limit
        const float lo = std::min(a, b), hi = std::max(a, b);
        const GroupParams ref = amlq::group_params(lo, hi, bits, sym);
        const cuda::GroupParams got = cuda::group_params(lo, hi, bits, sym);
        ASSERT_EQ(float_to_fp16(got.scale), float_to_fp16(ref.scale)) << lo << " " << hi << " b" << bits;
        ASSERT_EQ(static_cast<int>(got.zero), ref.zero) << lo << " " << hi << " b" << bits;
        for (float w : {lo, hi, 0.5f * (lo + hi), uni(rng), 10.0f, -10.0f}) {
          const int q = cuda::quantize_code(w, got, bits);
          ASSERT_EQ(q, quantize_value(w, ref.scale, ref.zero, maxq)) << w;
          ASSERT_EQ(cuda::dequantize_code(q, got), dequantize_value(q, ref.scale, ref.zero));
        }
      }
    }
  }
}

TEST(GptqPlan, DeadColumnsAndStableActOrder) {
  const std::vector<double> diag{2.0, 0.0, 5.0, 2.0, 3.0};
  const cuda::ColumnPrep prep = cuda::prepare_columns(diag, true);
  EXPECT_EQ(prep.dead_count, 1);
  EXPECT_EQ(prep.dead, (std::vector<uint8_t>{0, 1, 0, 0, 0}));
  // The dead column counts as diag 1; ties keep the original order.
  EXPECT_EQ(prep.perm, (std::vector<int32_t>{2, 4, 0, 3, 1}));
  EXPECT_DOUBLE_EQ(prep.mean_diag, (2.0 + 1.0 + 5.0 + 2.0 + 3.0) / 5);
  EXPECT_TRUE(cuda::prepare_columns(diag, false).perm.empty());
}

TEST(GptqPlan, ResolvesWholeRowAndStaticGroups) {
  QuantSpec spec;
  spec.parts = {QuantPart{4, 64, 0.25}, QuantPart{3, 0, 0.75}};
  const auto parts = cuda::resolve_parts({{0, 64}, {64, 256}}, spec, 256);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].group, 64);
  EXPECT_EQ(parts[0].num_groups, 1);
  EXPECT_EQ(parts[1].group, 192);
  EXPECT_EQ(parts[1].num_groups, 1);
  QuantSpec st;
  st.parts = {QuantPart{4, 32, 1.0}};
  st.static_groups = true;
  const auto sp = cuda::resolve_parts({{0, 96}}, st, 96);
  EXPECT_EQ(sp[0].num_groups, 3);
}

// Blocks must tile every part, never exceed the register budget, never cross a
// part, and match the CPU solver's blocks (gptq_blocks) at the capped width:
// where a block starts decides which weights a group's parameters see.
void expect_valid_blocks(const std::vector<PartPlan>& parts, const std::vector<ColumnBlock>& blocks, int cap) {
  int expected = parts.front().col_begin;
  std::vector<std::pair<int, int>> ranges;
  for (const PartPlan& p : parts) ranges.emplace_back(p.col_begin, p.col_end);
  const auto cpu = gptq_blocks(ranges, std::min(cap, cuda::kGptqMaxBlock));
  ASSERT_EQ(blocks.size(), cpu.size());
  for (size_t i = 0; i < blocks.size(); ++i) {
    const auto& b = blocks[i];
    EXPECT_EQ(b.begin, expected);
    EXPECT_EQ(b.begin, cpu[i].first);
    EXPECT_EQ(b.end, cpu[i].second);
    EXPECT_GT(b.end, b.begin);
    EXPECT_LE(b.end - b.begin, std::min(cap, cuda::kGptqMaxBlock));
    const PartPlan& p = parts[b.part];
    EXPECT_GE(b.begin, p.col_begin);
    EXPECT_LE(b.end, p.col_end);
    expected = b.end;
  }
  EXPECT_EQ(expected, parts.back().col_end);
}

TEST(GptqPlan, BlocksAreFixedWidthPerPart) {
  const std::vector<PartPlan> parts{{0, 96, 4, 32, 3}, {96, 396, 3, 300, 1}, {396, 652, 2, 64, 4}};
  for (int cap : {128, 64, 48, 1000}) expect_valid_blocks(parts, cuda::plan_blocks(parts, cap), cap);
  const auto blocks = cuda::plan_blocks(parts, 128);
  // Part 0 is one 96-wide block; part 1 (one 300-wide group) is cut 128+128+44;
  // part 2 is 128 + 128.
  ASSERT_EQ(blocks.size(), 6u);
  EXPECT_EQ(blocks[0].end, 96);
  EXPECT_EQ(blocks[1].end - blocks[1].begin, 128);
  EXPECT_EQ(blocks[3].end, 396);
  EXPECT_EQ(blocks[5].end, 652);
}

TEST(GptqPlan, ShortLastGroups) {
  // 172 columns (the real model's mlp.down_proj) with g32 and g64: ceil groups,
  // the last one shorter, exactly as the CPU solver stores them.
  QuantSpec spec;
  spec.parts = {QuantPart{3, 32, 1.0}};
  const auto one = cuda::resolve_parts(spec.part_columns(172), spec, 172);
  EXPECT_EQ(one[0].group, 32);
  EXPECT_EQ(one[0].num_groups, 6);
  spec.static_groups = true;
  EXPECT_EQ(cuda::resolve_parts(spec.part_columns(172), spec, 172)[0].num_groups, 6);
  const QuantSpec mixed = QuantSpec::parse("25%4b-g64+75%3b-g32");
  const auto two = cuda::resolve_parts(mixed.part_columns(172), mixed, 172);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0].num_groups, 1);  // [0, 64)
  EXPECT_EQ(two[1].num_groups, 4);  // [64, 172): 3 x 32 + 12
  const std::vector<PartPlan> parts{{0, 37, 4, 16, 3}, {37, 137, 3, 48, 3}, {137, 172, 2, 32, 2}};
  for (int cap : {128, 64, 40, 32, 7}) expect_valid_blocks(parts, cuda::plan_blocks(parts, cap), cap);
  // With cap 32 the short group [32, 37) is the second block of part 0.
  const auto blocks = cuda::plan_blocks(parts, 32);
  EXPECT_EQ(blocks[0].end, 32);
  EXPECT_EQ(blocks[1].begin, 32);
  EXPECT_EQ(blocks[1].end, 37);
}

}  // namespace
}  // namespace amlq
