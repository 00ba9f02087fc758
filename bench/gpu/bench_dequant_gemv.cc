// The fused packed GEMV (batch 1) against memory bandwidth and cuBLAS fp16.
//   bench_dequant_gemv [--rows 8192] [--cols 28672] [--rank 32] [--iters 200]
// Per bit width (2/3/4/8, group 128, act-order permutation, fp16 scales): time
// per call of the fused path (gather + t = B x + one GEMV launch), the bytes it
// must read (codes + scales + zeros + factors + x) per second, that rate as a
// fraction of the measured device-to-device copy bandwidth (read + write bytes),
// and the speed-up over cuBLAS GemmEx fp16 (W fp16, x fp16, fp32 compute) of
// the same shape, rank 0 and `rank`.
#include <cublas_v2.h>
#include <cuda_fp16.h>

#include <cstdio>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "bench_util.h"
#include "core/error.h"
#include "core/fp16.h"
#include "kernels/cuda_context.h"
#include "kernels/dequant_ops.h"
#include "kernels/device_buffer.h"
#include "kernels/device_select.h"
#include "quant/packed_format.h"

namespace amlq {
namespace {

using bench::FastRandom;
using cuda::DeviceBuffer;

struct RandomLayer {
  DeviceBuffer<uint32_t> codes, zeros;
  DeviceBuffer<uint16_t> scales;
  DeviceBuffer<int32_t> perm;
  DeviceBuffer<float> a, b;
  cuda::DevicePackedLinear view;
  double bytes = 0;  // what one batch-1 call must read
};

RandomLayer make_layer(cuda::CudaContext& ctx, int rows, int cols, int bits, int group, int rank, FastRandom& rng) {
  RandomLayer l;
  const int64_t wpr = packed::words_per_row(cols, bits);
  const int groups = cols / group;
  const int64_t zpr = packed::words_per_row(groups, bits);
  std::vector<uint32_t> codes(static_cast<size_t>(rows) * wpr), zeros(static_cast<size_t>(rows) * zpr);
  for (auto& w : codes) w = static_cast<uint32_t>(rng.next());
  for (auto& w : zeros) w = static_cast<uint32_t>(rng.next());
  std::vector<uint16_t> scales(static_cast<size_t>(rows) * groups);
  for (auto& s : scales) s = float_to_fp16(0.001f + 0.01f * rng.uniform());
  std::vector<int32_t> perm(cols);
  std::iota(perm.begin(), perm.end(), 0);
  for (int i = cols - 1; i > 0; --i) std::swap(perm[i], perm[rng.next() % (i + 1)]);
  l.codes = cuda::to_device(codes.data(), codes.size(), ctx.stream());
  l.zeros = cuda::to_device(zeros.data(), zeros.size(), ctx.stream());
  l.scales = cuda::to_device(scales.data(), scales.size(), ctx.stream());
  l.perm = cuda::to_device(perm.data(), perm.size(), ctx.stream());
  l.view.rows = rows;
  l.view.cols = cols;
  l.view.num_parts = 1;
  l.view.parts[0] = cuda::DevicePackedPart{0, cols, bits, group, groups, l.codes.data(), l.scales.data(), l.zeros.data()};
  l.view.perm = l.perm.data();
  l.bytes = 4.0 * codes.size() + 4.0 * zeros.size() + 2.0 * scales.size() + 4.0 * cols * 2 + 4.0 * rows;
  if (rank > 0) {
    std::vector<float> a(static_cast<size_t>(rows) * rank), b(static_cast<size_t>(rank) * cols);
    for (auto& v : a) v = 0.01f * rng.symmetric();
    for (auto& v : b) v = 0.01f * rng.symmetric();
    l.a = cuda::to_device(a.data(), a.size(), ctx.stream());
    l.b = cuda::to_device(b.data(), b.size(), ctx.stream());
    l.view.rank = rank;
    l.view.a = l.a.data();
    l.view.b = l.b.data();
    l.bytes += 4.0 * (a.size() + b.size());
  }
  ctx.synchronize();
  return l;
}

int run(int argc, char** argv) {
  int rows = 8192, cols = 28672, rank = 32, iters = 200;
  for (int i = 1; i + 1 < argc; i += 2) {
    const int v = std::stoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--rows")) rows = v;
    else if (!std::strcmp(argv[i], "--cols")) cols = v;
    else if (!std::strcmp(argv[i], "--rank")) rank = v;
    else if (!std::strcmp(argv[i], "--iters")) iters = v;
    else AMLQ_FAIL(Usage, "unknown argument '{}' (use --rows, --cols, --rank, --iters)", argv[i]);
  }
  if (cuda::cuda_device_count() == 0) AMLQ_FAIL(Device, "bench_dequant_gemv: no CUDA device found");
  if (cols % 128 != 0) AMLQ_FAIL(Usage, "--cols {} must be a multiple of the group size 128", cols);
  int device = 0;
  AMLQ_CHECK_CUDA(cudaGetDevice(&device));
  cuda::CudaContext ctx(device);
  cudaDeviceProp prop{};
  AMLQ_CHECK_CUDA(cudaGetDeviceProperties(&prop, device));

  // Device-to-device copy: the practical bandwidth ceiling (bytes read + written).
  const size_t copy_bytes = size_t{1} << 30;
  DeviceBuffer<char> src(copy_bytes), dst(copy_bytes);
  src.zero(ctx.stream());
  const double copy_s = bench::time_on_stream(ctx.stream(), 2, 10, [&] {
    AMLQ_CHECK_CUDA(cudaMemcpyAsync(dst.data(), src.data(), copy_bytes, cudaMemcpyDeviceToDevice, ctx.stream()));
  });
  const double copy_bw = 2.0 * copy_bytes / copy_s;

  // cuBLAS fp16 GEMV of the same shape: y (rows) = W (rows x cols) x.
  DeviceBuffer<__half> w16(static_cast<size_t>(rows) * cols), x16(cols), y16(rows);
  w16.zero(ctx.stream());
  x16.zero(ctx.stream());
  const float one = 1.0f, zero = 0.0f;
  const double cublas_s = bench::time_on_stream(ctx.stream(), 5, iters, [&] {
    AMLQ_CHECK_CUBLAS(cublasGemmEx(ctx.cublas(), CUBLAS_OP_T, CUBLAS_OP_N, rows, 1, cols, &one, w16.data(), CUDA_R_16F,
                                   cols, x16.data(), CUDA_R_16F, cols, &zero, y16.data(), CUDA_R_16F, rows,
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  });
  const double cublas_bytes = 2.0 * rows * cols + 2.0 * cols + 2.0 * rows;
  std::printf("# device: %s; D2D copy %.0f GB/s; cuBLAS fp16 GEMV %dx%d: %.1f us (%.0f GB/s)\n", prop.name,
              copy_bw * 1e-9, rows, cols, cublas_s * 1e6, cublas_bytes / cublas_s * 1e-9);
  std::printf("%5s %5s %10s %10s %10s %12s\n", "bits", "rank", "us", "GB/s", "of_copy", "vs_cuBLAS16");

  DeviceBuffer<float> x(cols), y(rows);
  std::vector<float> hx(cols);
  FastRandom rng(7);
  for (auto& v : hx) v = rng.symmetric();
  x.upload(hx.data(), ctx.stream());
  cuda::GemvWorkspace ws;
  for (int bits : {2, 3, 4, 8}) {
    for (int r : {0, rank}) {
      RandomLayer layer = make_layer(ctx, rows, cols, bits, 128, r, rng);
      const double s = bench::time_on_stream(ctx.stream(), 5, iters, [&] {
        cuda::dequant_gemv(ctx, layer.view, x.data(), 1, y.data(), ws);
      });
      std::printf("%5d %5d %10.1f %10.0f %9.1f%% %11.2fx\n", bits, r, s * 1e6, layer.bytes / s * 1e-9,
                  100.0 * layer.bytes / s / copy_bw, cublas_s / s);
      std::fflush(stdout);
      if (r == rank) break;
    }
  }
  return 0;
}

}  // namespace
}  // namespace amlq

int main(int argc, char** argv) {
  try {
    return amlq::run(argc, argv);
  } catch (const amlq::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return amlq::exit_code(e.kind());
  }
}
