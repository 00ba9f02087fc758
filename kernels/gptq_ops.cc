#include "kernels/gptq_ops.h"

#include <algorithm>

#include "kernels/cuda_check.h"
#include "kernels/device_buffer.h"
#include "kernels/launch_geometry.h"

namespace amlq::cuda {

void prepare_hessian(CudaContext& ctx, const double* h, double* out, int n, const int32_t* perm, double damp_abs) {
  AMLQ_CHECK_CUDA(launch_prepare_hessian(h, out, n, perm, damp_abs, ctx.stream()));
}

void gather_weight_columns(CudaContext& ctx, const float* w, float* out, int m, int n, const int32_t* perm,
                           const uint8_t* dead) {
  AMLQ_CHECK_CUDA(launch_gather_columns(w, out, m, n, perm, dead, ctx.stream()));
}

bool inverse_cholesky_upper(CudaContext& ctx, double* h, int n) {
  // cuSOLVER is column-major; a symmetric matrix reads the same either way. potrf
  // (lower) -> potri gives H^-1 in the lower triangle -> potrf (lower) of that
  // gives L2 with H^-1 = L2 L2^T, and the row-major view of L2 is U = L2^T.
  size_t dev_bytes = 0, host_bytes = 0;
  AMLQ_CHECK_CUSOLVER(cusolverDnXpotrf_bufferSize(ctx.cusolver(), ctx.cusolver_params(), CUBLAS_FILL_MODE_LOWER, n,
                                                  CUDA_R_64F, h, n, CUDA_R_64F, &dev_bytes, &host_bytes));
  int potri_lwork = 0;
  AMLQ_CHECK_CUSOLVER(cusolverDnDpotri_bufferSize(ctx.cusolver(), CUBLAS_FILL_MODE_LOWER, n, h, n, &potri_lwork));
  const size_t work_bytes = std::max(dev_bytes, static_cast<size_t>(potri_lwork) * sizeof(double));
  DeviceBuffer<char> work(std::max<size_t>(work_bytes, 1));
  std::vector<char> host_work(std::max<size_t>(host_bytes, 1));
  DeviceBuffer<int> info(1);
  int host_info = 0;
  auto factor = [&]() {
    AMLQ_CHECK_CUSOLVER(cusolverDnXpotrf(ctx.cusolver(), ctx.cusolver_params(), CUBLAS_FILL_MODE_LOWER, n,
                                         CUDA_R_64F, h, n, CUDA_R_64F, work.data(), dev_bytes, host_work.data(),
                                         host_bytes, info.data()));
    info.download(&host_info, ctx.stream());
    ctx.synchronize();
    AMLQ_ASSERT(host_info >= 0, "potrf rejected argument {}", -host_info);
    return host_info == 0;
  };
  if (!factor()) return false;
  AMLQ_CHECK_CUSOLVER(cusolverDnDpotri(ctx.cusolver(), CUBLAS_FILL_MODE_LOWER, n, h, n,
                                       reinterpret_cast<double*>(work.data()), potri_lwork, info.data()));
  info.download(&host_info, ctx.stream());
  ctx.synchronize();
  AMLQ_ASSERT(host_info >= 0, "potri rejected argument {}", -host_info);
  if (host_info != 0) return false;
  if (!factor()) return false;
  // The row-major lower triangle still holds the prepared Hessian's values.
  AMLQ_CHECK_CUDA(launch_zero_lower(h, n, ctx.stream()));
  return true;
}

void upper_to_float(CudaContext& ctx, const double* u, int n, float* u_float) {
  AMLQ_CHECK_CUDA(launch_upper_to_float(u, u_float, n, ctx.stream()));
}

void static_group_params(CudaContext& ctx, const float* w, int m, int n, const uint8_t* dead,
                         const GptqDevicePart& part, bool symmetric) {
  AMLQ_CHECK_CUDA(launch_static_group_params(w, m, n, dead, part, symmetric, ctx.stream()));
}

void run_gptq_blocks(CudaContext& ctx, float* w, int m, int n, const float* u, const std::vector<ColumnBlock>& blocks,
                     const std::vector<GptqDevicePart>& parts, bool symmetric, bool static_groups,
                     const int32_t* static_perm, uint8_t* codes, double* scaled_err_sq) {
  DeviceBuffer<float> err(u ? static_cast<size_t>(m) * kGptqMaxBlock : 0);
  const float minus_one = -1.0f, one = 1.0f;
  for (const ColumnBlock& b : blocks) {
    const int bw = b.end - b.begin;
    AMLQ_ASSERT(bw >= 1 && bw <= kGptqMaxBlock, "block [{}, {}) is wider than {}", b.begin, b.end, kGptqMaxBlock);
    AMLQ_CHECK_CUDA(launch_gptq_block(w, m, n, u, b.begin, bw, parts[b.part], symmetric, static_groups, static_perm,
                                      codes, err.data(), ctx.stream()));
    if (u != nullptr) AMLQ_CHECK_CUDA(launch_sum_squares(err.data(), static_cast<int64_t>(m) * bw, scaled_err_sq, ctx.stream()));
    if (u != nullptr && b.end < n) {
      // W[:, end:] -= E U[begin:end, end:], in cuBLAS's column-major terms W^T -= U_sub^T E^T.
      AMLQ_CHECK_CUBLAS(cublasSgemm(ctx.cublas(), CUBLAS_OP_N, CUBLAS_OP_N, n - b.end, m, bw, &minus_one,
                                    u + static_cast<int64_t>(b.begin) * n + b.end, n, err.data(), bw, &one,
                                    w + b.end, n));
    }
  }
}

namespace {

GptqDeviceParts all_parts(const std::vector<GptqDevicePart>& parts) {
  AMLQ_ASSERT(parts.size() <= static_cast<size_t>(kMaxGptqParts), "{} parts (at most {})", parts.size(),
              kMaxGptqParts);
  GptqDeviceParts all;
  all.count = static_cast<int>(parts.size());
  for (size_t p = 0; p < parts.size(); ++p) all.parts[p] = parts[p];
  return all;
}

}  // namespace

void error_matrix(CudaContext& ctx, const float* w, int m, int n, const int32_t* perm, const uint8_t* dead,
                  const uint8_t* codes, const std::vector<GptqDevicePart>& parts, bool static_groups, double* e) {
  AMLQ_CHECK_CUDA(launch_error_matrix(w, m, n, perm, dead, codes, all_parts(parts), static_groups, e, ctx.stream()));
}

void row_sq_norms(CudaContext& ctx, const double* x, int64_t rows, int cols, double* out) {
  AMLQ_CHECK_CUDA(launch_row_sq_norms(x, rows, cols, out, ctx.stream()));
}

double reconstruction_error_sq(CudaContext& ctx, const float* w, int m, int n, const int32_t* perm,
                               const uint8_t* dead, const uint8_t* codes, const std::vector<GptqDevicePart>& parts,
                               bool static_groups) {
  const GptqDeviceParts all = all_parts(parts);
  DeviceBuffer<double> acc(1);
  acc.zero(ctx.stream());
  AMLQ_CHECK_CUDA(launch_reconstruction_error_sq(w, m, n, perm, dead, codes, all, static_groups, acc.data(),
                                                 ctx.stream()));
  double host = 0;
  acc.download(&host, ctx.stream());
  ctx.synchronize();
  return host;
}

}  // namespace amlq::cuda
