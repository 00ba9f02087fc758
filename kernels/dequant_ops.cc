#include "kernels/dequant_ops.h"

#include "core/fp16.h"
#include "kernels/cuda_check.h"
#include "kernels/dense_kernels.h"
#include "kernels/launch_geometry.h"
#include "quant/pack.h"
#include "quant/packed_format.h"
#include "quant/quantizer.h"

namespace amlq::cuda {

DevicePackedLayer DevicePackedLayer::upload(const PackedLinear& layer, cudaStream_t stream) {
  const std::string& name = layer.name;
  const size_t rows = static_cast<size_t>(layer.rows);
  const size_t cols = static_cast<size_t>(layer.cols);
  AMLQ_REQUIRE(!layer.parts.empty() && layer.parts.size() <= static_cast<size_t>(kMaxDeviceParts),
               "{}: {} parts (the CUDA backend takes 1..{})", name, layer.parts.size(), kMaxDeviceParts);
  AMLQ_REQUIRE(layer.perm.empty() || layer.perm.size() == cols, "{}: permutation has {} entries for {} columns", name,
               layer.perm.size(), cols);
  DevicePackedLayer out;
  DevicePackedLinear& v = out.view_;
  v.rows = layer.rows;
  v.cols = layer.cols;
  v.num_parts = static_cast<int>(layer.parts.size());
  v.static_groups = layer.spec.static_groups;
  int expected_begin = 0;
  for (size_t p = 0; p < layer.parts.size(); ++p) {
    const PackedPart& part = layer.parts[p];
    const int width = part.col_end - part.col_begin;
    AMLQ_REQUIRE(part.col_begin == expected_begin && width > 0 && packed::valid_bits(part.bits) && part.group > 0 &&
                     part.num_groups > 0,
                 "{}: part {} has columns [{}, {}), {} bits, group {}, {} groups", name, p, part.col_begin,
                 part.col_end, part.bits, part.group, part.num_groups);
    // ceil groups (the last may be shorter); fewer would index past the scales.
    const int span = layer.spec.static_groups ? layer.cols : width;
    AMLQ_REQUIRE(part.num_groups == group_count(span, part.group),
                 "{}: part {} stores {} groups of {} columns, expected ceil({} / {}) = {}", name, p, part.num_groups,
                 part.group, span, part.group, group_count(span, part.group));
    expected_begin = part.col_end;
    const size_t code_words = rows * packed::words_per_row(width, part.bits);
    const size_t zero_words = rows * packed::words_per_row(part.num_groups, part.bits);
    const size_t scale_count = rows * part.num_groups;
    AMLQ_REQUIRE(part.codes.size() == code_words && part.zeros.size() == zero_words &&
                     part.scales.size() == scale_count,
                 "{}: part {} holds {} code words, {} zero words, {} scales; expected {}, {}, {}", name, p,
                 part.codes.size(), part.zeros.size(), part.scales.size(), code_words, zero_words, scale_count);
    out.codes_.push_back(to_device(part.codes.data(), code_words, stream));
    out.zeros_.push_back(to_device(part.zeros.data(), zero_words, stream));
    out.scales_.push_back(to_device(part.scales.data(), scale_count, stream));
    v.parts[p] = DevicePackedPart{part.col_begin, part.col_end, part.bits, part.group, part.num_groups,
                                  out.codes_.back().data(), out.scales_.back().data(), out.zeros_.back().data()};
  }
  AMLQ_REQUIRE(expected_begin == layer.cols, "{}: parts cover {} of {} columns", name, expected_begin, layer.cols);
  if (!layer.perm.empty()) {
    out.perm_ = to_device(layer.perm.data(), cols, stream);
    v.perm = out.perm_.data();
  }
  if (layer.rank > 0) {
    // The same float values the CPU oracle multiplies with (fp16 or int8 x row scale).
    const LowRankFactors f = unpack_factors(layer);
    out.a_ = to_device(f.a.data(), f.a.size(), stream);
    out.b_ = to_device(f.b.data(), f.b.size(), stream);
    v.rank = layer.rank;
    v.a = out.a_.data();
    v.b = out.b_.data();
  }
  if (!layer.bias.empty()) {
    AMLQ_REQUIRE(layer.bias.size() == rows, "{}: bias has {} values for {} rows", name, layer.bias.size(), rows);
    out.bias_ = to_device(layer.bias.data(), rows, stream);
    v.bias = out.bias_.data();
  }
  // The host vectors converted above must outlive the copies.
  AMLQ_CHECK_CUDA(cudaStreamSynchronize(stream));
  return out;
}

void GemvWorkspace::reserve(int tokens, int cols, int rank) {
  const size_t need_x = static_cast<size_t>(tokens) * cols;
  const size_t need_t = static_cast<size_t>(tokens) * rank;
  if (xp.size() < need_x) xp = DeviceBuffer<float>(need_x);
  if (t.size() < need_t) t = DeviceBuffer<float>(need_t);
}

bool fused_gemv_applies(const DevicePackedLinear& layer, int tokens) {
  return gemv_supports_tokens(tokens) && !layer.static_groups && layer.num_parts >= 1;
}

void dequant_gemv(CudaContext& ctx, const DevicePackedLinear& layer, const float* x, int tokens, float* y,
                  GemvWorkspace& ws) {
  AMLQ_ASSERT(fused_gemv_applies(layer, tokens), "fused GEMV called with {} tokens", tokens);
  ws.reserve(tokens, layer.cols, layer.rank);
  const float* xp = x;
  if (layer.perm) {
    AMLQ_CHECK_CUDA(launch_gather_columns_f32(x, ws.xp.data(), tokens, layer.cols, layer.perm, ctx.stream()));
    xp = ws.xp.data();
  }
  if (layer.rank > 0)
    AMLQ_CHECK_CUDA(launch_lowrank_project(x, layer.b, tokens, layer.cols, layer.rank, ws.t.data(), ctx.stream()));
  for (int p = 0; p < layer.num_parts; ++p) {
    AMLQ_CHECK_CUDA(
        launch_dequant_gemv_part(layer, p, xp, layer.rank > 0 ? ws.t.data() : nullptr, tokens, p > 0, y, ctx.stream()));
  }
}

void dequant_matmul(CudaContext& ctx, const DevicePackedLinear& layer, const float* x, int tokens, float* y) {
  if (tokens == 0) return;
  DeviceBuffer<float> w(static_cast<size_t>(layer.rows) * layer.cols);
  AMLQ_CHECK_CUDA(launch_dequantize(layer, w.data(), ctx.stream()));
  const float one = 1.0f, zero = 0.0f;
  const int m = layer.rows, n = layer.cols;
  // Column-major: y^T (m x tokens) = W x^T, as in forward_ops linear.
  AMLQ_CHECK_CUBLAS(cublasSgemm(ctx.cublas(), CUBLAS_OP_T, CUBLAS_OP_N, m, tokens, n, &one, w.data(), n, x, n, &zero, y, m));
  if (layer.rank > 0) {
    const int k = layer.rank;
    DeviceBuffer<float> t(static_cast<size_t>(tokens) * k);
    // t^T (k x tokens) = B x^T; then y^T += A t^T.
    AMLQ_CHECK_CUBLAS(
        cublasSgemm(ctx.cublas(), CUBLAS_OP_T, CUBLAS_OP_N, k, tokens, n, &one, layer.b, n, x, n, &zero, t.data(), k));
    AMLQ_CHECK_CUBLAS(
        cublasSgemm(ctx.cublas(), CUBLAS_OP_T, CUBLAS_OP_N, m, tokens, k, &one, layer.a, k, t.data(), k, &one, y, m));
    ctx.synchronize();  // t is freed at scope exit
  }
  if (layer.bias) AMLQ_CHECK_CUDA(launch_add_bias(y, tokens, m, layer.bias, ctx.stream()));
  ctx.synchronize();  // w is freed at scope exit
}

}  // namespace amlq::cuda
