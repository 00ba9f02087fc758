// GPTQ per layer on the CUDA backend at Llama-2/3 70B-class shapes.
//   bench_gptq_gpu [--spec 4b-g128] [--shapes 4096x4096,...]
// Prints, per shape (out x in): seconds of Backend::quantize end to end (host
// copies of W and the fp64 Hessian included), of which the host<->device
// transfer share is estimated from a measured pageable copy rate; the
// error-propagation work m*n^2 (the GEMM-equivalent flops of GPTQ) per second,
// and that rate as a fraction of a measured cuBLAS SGEMM rate (8192^3, fp32,
// no TF32, as the backend runs it).
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "bench_util.h"
#include "core/error.h"
#include "kernels/cuda_context.h"
#include "kernels/device_buffer.h"
#include "kernels/device_select.h"
#include "kernels/linalg_ops.h"

namespace amlq {
namespace {

using bench::FastRandom;
using cuda::DeviceBuffer;

double measured_sgemm_flops(cuda::CudaContext& ctx) {
  const int n = 8192;
  DeviceBuffer<float> a(static_cast<size_t>(n) * n), b(a.size()), c(a.size());
  a.zero(ctx.stream());
  b.zero(ctx.stream());
  const float one = 1.0f, zero = 0.0f;
  const double s = bench::time_on_stream(ctx.stream(), 2, 10, [&] {
    AMLQ_CHECK_CUBLAS(cublasSgemm(ctx.cublas(), CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a.data(), n, b.data(), n,
                                  &zero, c.data(), n));
  });
  return 2.0 * n * n * n / s;
}

double measured_pageable_copy_rate(cuda::CudaContext& ctx) {
  const size_t bytes = size_t{1} << 30;
  std::vector<char> host(bytes, 1);
  DeviceBuffer<char> dev(bytes);
  const auto t0 = std::chrono::steady_clock::now();
  dev.upload(host.data(), ctx.stream());
  dev.download(host.data(), ctx.stream());
  ctx.synchronize();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return 2.0 * bytes / s;
}

// H = (2/N) X^T X of `tokens` random inputs, built on the device.
MatrixD synthetic_hessian(cuda::CudaContext& ctx, int n, int tokens, FastRandom& rng) {
  std::vector<float> x(static_cast<size_t>(tokens) * n);
  for (auto& v : x) v = rng.symmetric();
  for (int c = 0; c < n; c += 97)  // a few outlier channels, as in real activations
    for (int t = 0; t < tokens; ++t) x[static_cast<size_t>(t) * n + c] *= 20.0f;
  auto dx = cuda::to_device(x.data(), x.size(), ctx.stream());
  DeviceBuffer<double> dh(static_cast<size_t>(n) * n), ds(n);
  dh.zero(ctx.stream());
  ds.zero(ctx.stream());
  cuda::accumulate_hessian(ctx, dx.data(), tokens, n, dh.data(), ds.data());
  MatrixD h(n, n);
  dh.download(h.data(), ctx.stream());
  ctx.synchronize();
  h *= 2.0 / tokens;
  return h;
}

int run(int argc, char** argv) {
  std::string spec_label = "4b-g128";
  std::vector<std::pair<int, int>> shapes{{4096, 4096}, {11008, 4096}, {8192, 8192}, {28672, 8192}, {8192, 28672}};
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--spec")) {
      spec_label = argv[i + 1];
    } else if (!std::strcmp(argv[i], "--shapes")) {
      shapes.clear();
      std::string s = argv[i + 1];
      size_t pos = 0;
      while (pos < s.size()) {
        const size_t comma = std::min(s.find(',', pos), s.size());
        const std::string item = s.substr(pos, comma - pos);
        const size_t x = item.find('x');
        if (x == std::string::npos) AMLQ_FAIL(Usage, "--shapes: '{}' is not OUTxIN", item);
        shapes.emplace_back(std::stoi(item.substr(0, x)), std::stoi(item.substr(x + 1)));
        pos = comma + 1;
      }
    } else {
      AMLQ_FAIL(Usage, "unknown argument '{}' (use --spec LABEL, --shapes OUTxIN,...)", argv[i]);
    }
  }
  if (cuda::cuda_device_count() == 0) AMLQ_FAIL(Device, "bench_gptq_gpu: no CUDA device found");
  const QuantSpec spec = QuantSpec::parse(spec_label);
  auto backend = make_backend("cuda");
  int device = 0;
  AMLQ_CHECK_CUDA(cudaGetDevice(&device));
  cuda::CudaContext ctx(device);
  cudaDeviceProp prop{};
  AMLQ_CHECK_CUDA(cudaGetDeviceProperties(&prop, device));
  const double sgemm = measured_sgemm_flops(ctx);
  const double copy = measured_pageable_copy_rate(ctx);
  std::printf("# device: %s; cuBLAS SGEMM 8192^3: %.1f TFLOP/s; pageable H<->D copy: %.1f GB/s; spec %s\n",
              prop.name, sgemm * 1e-12, copy * 1e-9, spec_label.c_str());
  std::printf("%-12s %10s %12s %14s %12s %14s\n", "shape", "seconds", "copy_est_s", "m*n^2 TFLOP/s", "of_SGEMM",
              "tr(EHE^T)");
  FastRandom rng(42);
  for (const auto& [m, n] : shapes) {
    MatrixF w(m, n);
    for (Eigen::Index i = 0; i < w.size(); ++i) w.data()[i] = 0.02f * rng.symmetric();
    const MatrixD h = synthetic_hessian(ctx, n, std::max(2048, n / 2), rng);
    GptqOptions options;
    backend->quantize(w.topRows(std::min(m, 256)), h, spec, options);  // warm-up: handles, allocator
    const auto t0 = std::chrono::steady_clock::now();
    const QuantizedMatrix q = backend->quantize(w, h, spec, options);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double moved = 8.0 * n * n + 4.0 * m * n + 1.0 * m * n;  // H in, W in, codes out
    const double work = static_cast<double>(m) * n * n;
    std::printf("%5dx%-6d %10.3f %12.3f %14.2f %11.1f%% %14.4e\n", m, n, s, moved / copy, work / s * 1e-12,
                100.0 * work / s / sgemm, q.output_error);
    std::fflush(stdout);
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
