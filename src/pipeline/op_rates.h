#pragma once
// Rates of the operations the time model of `amlq plan` charges
// (pipeline/time_model.h), read from configs/rates/*.toml or measured on this
// machine by `amlq plan --measure-rates`.
//
// The file format is the flat TOML of the recipe files: `key = value` lines with
// comments. Host rates (one Eigen thread unless the key says `_all`):
//
//   machine = "..."                  # free text, printed with every plan
//   threads = 2                      # threads behind the *_all rates
//   gemm_f32_gflops_1t = 60.0        # GEMM, fp32 (forward linears, GPTQ's lazy update)
//   gemm_f32_gflops_all = 110.0      # the CPU backend's tiled GEMM on `threads` threads
//   gemm_f64_gflops_1t = 30.0        # GEMM, fp64 (tr(E H E^T), whitening, Gram matrices)
//   cholesky_f64_gflops_1t = 20.0    # Eigen LLT, n^3/3 flops
//   trinv_f64_gflops_1t = 20.0       # triangular inverse (quant/gptq.cc), n^3/3 flops
//   gptq_update_gflops_1t = 40.0     # GPTQ's lazy updates (fp32 GEMMs on W^T), gptq_lazy_flops()
//   gptq_columns_gweights_1t = 0.1   # GPTQ's column loop (quantize, error, in-block updates), weights/s
//   eigensolver_f64_gflops_1t = 3.0  # Eigen SelfAdjointEigenSolver (cpu::svd), 9 n^3 flops
//   memory_gbs_1t = 10.0             # bytes read + written per second, one thread
//   memory_gbs_all = 15.0            # the same on `threads` threads
//   disk_write_gbs = 1.0             # sequential write + fsync
//   disk_read_gbs = 2.0              # cold read of checkpoint shards (not measured: an assumption)
//   network_gbs = 10.0               # between ranks (not measured: an assumption)
//
// Device rates (`--backend cuda`):
//
//   gpu_gemm_f32_gflops, gpu_gemm_f64_gflops  # cuBLAS SGEMM (no TF32) / DGEMM and DSYRK
//   gpu_potrf_f64_gflops             # cuSOLVER potrf/potri, n^3/3 and 2n^3/3 flops
//   gpu_syevd_f64_gflops             # cuSOLVER syevd with vectors, 9 n^3 flops
//   gpu_memory_gbs                   # device memory bandwidth
//   gpu_host_copy_gbs                # cudaMemcpy between pageable host memory and the device
//   gpu_call_us                      # fixed cost of one kernel launch + synchronization
//
// Every key is a rate (larger is faster); files given later override earlier ones.
#include <functional>
#include <string>
#include <vector>

namespace amlq {

struct OpRates {
  std::vector<std::string> sources;  // files read, in order
  // Per file read: "<file name> (<its machine>[, measured <date>])", for the plan's header.
  std::vector<std::string> described;
  std::string machine;               // description of the last file that gave one
  std::string measured;              // its date
  int threads = 1;
  // Host, in operations (flops or bytes) per second.
  double gemm_f32_1t = 0, gemm_f32_all = 0, gemm_f64_1t = 0;
  double cholesky_f64_1t = 0, trinv_f64_1t = 0, gptq_update_1t = 0, gptq_columns_1t = 0, eigensolver_f64_1t = 0;
  double memory_1t = 0, memory_all = 0;
  double disk_write = 0, disk_read = 0, network = 0;
  // Device (CUDA backend); 0 when no file gave them.
  double gpu_gemm_f32 = 0, gpu_gemm_f64 = 0, gpu_potrf_f64 = 0, gpu_syevd_f64 = 0;
  double gpu_memory = 0, gpu_host_copy = 0, gpu_call_seconds = 0;

  bool has_host() const;
  bool has_device() const;
};

// Parses one rates file onto `base` (keys it holds override). Unknown keys,
// non-positive rates and wrong types throw Input "<file>:<line>: ...".
OpRates parse_op_rates(const std::string& text, const std::string& source, OpRates base = {});
// Reads the files in order; a name without '/' or ".toml" is configs/rates/<name>.toml.
OpRates load_op_rates(const std::vector<std::string>& files_or_names);

// The flops GPTQ's lazy updates perform on an m x n matrix with column blocks
// of `block` (sum over blocks of 2 m b (n - end)): what gptq_update_gflops_1t
// is measured against, and what the time model charges.
double gptq_lazy_flops(double m, double n, int block);

// Times representative operations on this machine (well under a minute) and
// returns them; disk_dir is where a scratch file is written, synced and removed.
// progress(line) is called after each measurement.
struct RateProbeOptions {
  std::string disk_dir = ".";
  int threads = 0;  // 0: all cores
  double disk_bytes = 128.0 * (1 << 20);
};
OpRates measure_op_rates(const RateProbeOptions& options, const std::function<void(const std::string&)>& progress);

// The TOML text of `rates` (host keys, device keys when present), with
// `header` lines as comments on top.
std::string op_rates_toml(const OpRates& rates, const std::vector<std::string>& header);

}  // namespace amlq
