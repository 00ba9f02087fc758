#include "kernels/linalg_ops.h"

#include <algorithm>
#include <cmath>

#include "kernels/cuda_check.h"
#include "kernels/dense_kernels.h"
#include "kernels/device_buffer.h"

namespace amlq::cuda {

void accumulate_hessian(CudaContext& ctx, const float* x, int64_t tokens, int n, double* h, double* abs_sum) {
  if (tokens == 0 || n == 0) return;
  // Bounded fp64 staging: tokens are taken in chunks of at most ~256 MiB.
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(tokens, (int64_t{32} << 20) / n));
  DeviceBuffer<double> x64(static_cast<size_t>(chunk) * n);
  const double one = 1.0;
  for (int64_t t0 = 0; t0 < tokens; t0 += chunk) {
    const int64_t count = std::min(chunk, tokens - t0);
    const float* xs = x + t0 * n;
    AMLQ_CHECK_CUDA(launch_float_to_double(xs, x64.data(), count * n, ctx.stream()));
    // Row-major x (count x n) is column-major x^T (n x count): C = x^T x. The
    // column-major lower triangle is the row-major upper one.
    AMLQ_CHECK_CUBLAS(cublasDsyrk(ctx.cublas(), CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, n, static_cast<int>(count), &one,
                                  x64.data(), n, &one, h, n));
    AMLQ_CHECK_CUDA(launch_abs_column_sums(xs, count, n, abs_sum, ctx.stream()));
  }
  AMLQ_CHECK_CUDA(launch_mirror_upper_to_lower(h, n, ctx.stream()));
}

GramSvd gram_svd(CudaContext& ctx, const double* m, int rows, int cols, int rank) {
  const int small = std::min(rows, cols);
  AMLQ_ASSERT(rank >= 0 && rank <= small, "rank {} of a {}x{} matrix", rank, rows, cols);
  GramSvd out;
  if (rank == 0) return out;
  const bool wide = rows <= cols;  // Gram of the rows (M M^T) when that side is smaller
  DeviceBuffer<double> gram(static_cast<size_t>(small) * small);
  const double one = 1.0, zero = 0.0;
  // Row-major M is column-major A = M^T (cols x rows, ld cols).
  if (wide) {
    AMLQ_CHECK_CUBLAS(cublasDsyrk(ctx.cublas(), CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_T, rows, cols, &one, m, cols, &zero,
                                  gram.data(), rows));
  } else {
    AMLQ_CHECK_CUBLAS(cublasDsyrk(ctx.cublas(), CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, cols, rows, &one, m, cols, &zero,
                                  gram.data(), cols));
  }
  DeviceBuffer<double> eig(small);
  size_t dev_bytes = 0, host_bytes = 0;
  AMLQ_CHECK_CUSOLVER(cusolverDnXsyevd_bufferSize(ctx.cusolver(), ctx.cusolver_params(), CUSOLVER_EIG_MODE_VECTOR,
                                                  CUBLAS_FILL_MODE_LOWER, small, CUDA_R_64F, gram.data(), small,
                                                  CUDA_R_64F, eig.data(), CUDA_R_64F, &dev_bytes, &host_bytes));
  DeviceBuffer<char> work(std::max<size_t>(dev_bytes, 1));
  std::vector<char> host_work(std::max<size_t>(host_bytes, 1));
  DeviceBuffer<int> info(1);
  AMLQ_CHECK_CUSOLVER(cusolverDnXsyevd(ctx.cusolver(), ctx.cusolver_params(), CUSOLVER_EIG_MODE_VECTOR,
                                       CUBLAS_FILL_MODE_LOWER, small, CUDA_R_64F, gram.data(), small, CUDA_R_64F,
                                       eig.data(), CUDA_R_64F, work.data(), dev_bytes, host_work.data(), host_bytes,
                                       info.data()));
  // Eigenvalues ascend: the top `rank` vectors are the last `rank` columns.
  const double* top = gram.data() + static_cast<int64_t>(small - rank) * small;
  const int other = wide ? cols : rows;
  DeviceBuffer<double> projected(static_cast<size_t>(other) * rank);
  if (wide) {
    // V (cols x rank, column-major) = M^T U = A U.
    AMLQ_CHECK_CUBLAS(cublasDgemm(ctx.cublas(), CUBLAS_OP_N, CUBLAS_OP_N, cols, rank, rows, &one, m, cols, top, small,
                                  &zero, projected.data(), cols));
  } else {
    // U (rows x rank, column-major) = M V = A^T V.
    AMLQ_CHECK_CUBLAS(cublasDgemm(ctx.cublas(), CUBLAS_OP_T, CUBLAS_OP_N, rows, rank, cols, &one, m, cols, top, small,
                                  &zero, projected.data(), rows));
  }
  int host_info = 0;
  std::vector<double> eigenvalues(small), basis(static_cast<size_t>(small) * rank),
      other_side(static_cast<size_t>(other) * rank);
  info.download(&host_info, ctx.stream());
  eig.download(eigenvalues.data(), ctx.stream());
  AMLQ_CHECK_CUDA(cudaMemcpyAsync(basis.data(), top, basis.size() * sizeof(double), cudaMemcpyDeviceToHost,
                                  ctx.stream()));
  projected.download(other_side.data(), ctx.stream());
  ctx.synchronize();
  if (host_info != 0) AMLQ_FAIL(Numerical, "syevd of a {}x{} Gram matrix failed (info {})", small, small, host_info);

  out.s.resize(rank);
  out.u.assign(static_cast<size_t>(rows) * rank, 0.0);
  out.v.assign(static_cast<size_t>(cols) * rank, 0.0);
  // As the CPU oracle: triplets with sigma <= 1e-10 sigma_max are dropped (zeros).
  const double sigma_floor = std::sqrt(std::max(eigenvalues[small - 1], 0.0)) * 1e-10;
  std::vector<double>& direct = wide ? out.u : out.v;
  std::vector<double>& derived = wide ? out.v : out.u;
  for (int i = 0; i < rank; ++i) {
    const int src = rank - 1 - i;  // column of the i-th largest
    const double sigma = std::sqrt(std::max(eigenvalues[small - 1 - i], 0.0));
    if (!(sigma > sigma_floor && sigma > 0)) {
      out.s[i] = 0;
      continue;
    }
    out.s[i] = sigma;
    for (int r = 0; r < small; ++r)
      direct[static_cast<size_t>(r) * rank + i] = basis[static_cast<size_t>(src) * small + r];
    for (int r = 0; r < other; ++r)
      derived[static_cast<size_t>(r) * rank + i] = other_side[static_cast<size_t>(src) * other + r] / sigma;
  }
  return out;
}

}  // namespace amlq::cuda
