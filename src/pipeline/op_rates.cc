#include "pipeline/op_rates.h"

#include <fcntl.h>
#include <unistd.h>

#include <Eigen/Cholesky>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "backend/cpu/cpu_ops.h"
#include "core/error.h"
#include "core/parallel.h"
#include "core/timer.h"
#include "quant/gptq.h"
#include "search/flat_toml.h"
#include "search/recipe_space.h"

namespace amlq {
namespace fs = std::filesystem;
namespace {

constexpr double kGiga = 1e9;

// A key of the rates file: where its value goes, and the factor from the
// file's unit (GFLOP/s, GB/s, microseconds) to the struct's (per second).
struct RateKey {
  const char* key;
  double OpRates::*field;
  double unit;
  bool device;
};

constexpr RateKey kRateKeys[] = {
    {"gemm_f32_gflops_1t", &OpRates::gemm_f32_1t, kGiga, false},
    {"gemm_f32_gflops_all", &OpRates::gemm_f32_all, kGiga, false},
    {"gemm_f64_gflops_1t", &OpRates::gemm_f64_1t, kGiga, false},
    {"cholesky_f64_gflops_1t", &OpRates::cholesky_f64_1t, kGiga, false},
    {"trinv_f64_gflops_1t", &OpRates::trinv_f64_1t, kGiga, false},
    {"gptq_update_gflops_1t", &OpRates::gptq_update_1t, kGiga, false},
    {"gptq_columns_gweights_1t", &OpRates::gptq_columns_1t, kGiga, false},
    {"eigensolver_f64_gflops_1t", &OpRates::eigensolver_f64_1t, kGiga, false},
    {"memory_gbs_1t", &OpRates::memory_1t, kGiga, false},
    {"memory_gbs_all", &OpRates::memory_all, kGiga, false},
    {"disk_write_gbs", &OpRates::disk_write, kGiga, false},
    {"disk_read_gbs", &OpRates::disk_read, kGiga, false},
    {"network_gbs", &OpRates::network, kGiga, false},
    {"gpu_gemm_f32_gflops", &OpRates::gpu_gemm_f32, kGiga, true},
    {"gpu_gemm_f64_gflops", &OpRates::gpu_gemm_f64, kGiga, true},
    {"gpu_potrf_f64_gflops", &OpRates::gpu_potrf_f64, kGiga, true},
    {"gpu_syevd_f64_gflops", &OpRates::gpu_syevd_f64, kGiga, true},
    {"gpu_memory_gbs", &OpRates::gpu_memory, kGiga, true},
    {"gpu_host_copy_gbs", &OpRates::gpu_host_copy, kGiga, true},
    {"gpu_call_us", &OpRates::gpu_call_seconds, 1e-6, true},
};

double number_of(const toml::Entry& e, const std::string& source) {
  if (const auto* i = std::get_if<int64_t>(&e.value.data)) return static_cast<double>(*i);
  if (const auto* d = std::get_if<double>(&e.value.data)) return *d;
  AMLQ_FAIL(Input, "{}:{}: key '{}' must be a number, got {}", source, e.line, e.key, e.value.type_name());
}

std::string string_of(const toml::Entry& e, const std::string& source) {
  if (const auto* s = std::get_if<std::string>(&e.value.data)) return *s;
  AMLQ_FAIL(Input, "{}:{}: key '{}' must be a string, got {}", source, e.line, e.key, e.value.type_name());
}

// Best (smallest) of `repeats` timings of fn after one warm-up call.
template <typename Fn>
double best_seconds(int repeats, Fn&& fn) {
  fn();
  double best = std::numeric_limits<double>::infinity();
  for (int i = 0; i < repeats; ++i) {
    Timer t;
    fn();
    best = std::min(best, t.seconds());
  }
  return std::max(best, 1e-9);
}

MatrixD random_spd(int n, unsigned seed) {
  std::srand(seed);
  const MatrixD a = MatrixD::Random(n, n);
  MatrixD h = a * a.transpose();
  h.diagonal().array() += n;
  return h;
}

// Bytes read + written per second by y = a + s * b over arrays of `count`
// doubles, split into `parts` contiguous chunks run on `threads` threads.
double triad_rate(std::vector<double>& a, std::vector<double>& b, std::vector<double>& y, int threads) {
  const size_t count = y.size();
  const int parts = std::max(1, threads) * 4;
  const double seconds = best_seconds(3, [&] {
    parallel_for(parts, threads, [&](int p) {
      const size_t first = count * static_cast<size_t>(p) / parts, end = count * static_cast<size_t>(p + 1) / parts;
      for (size_t i = first; i < end; ++i) y[i] = a[i] + 0.5 * b[i];
    });
  });
  return 3.0 * 8.0 * static_cast<double>(count) / seconds;
}

double disk_write_rate(const std::string& dir, double bytes) {
  const fs::path path = fs::path(dir) / fmt::format(".amlq-rate-probe-{}", ::getpid());
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) AMLQ_FAIL(Output, "{}: cannot create the disk probe file: {}", path.string(), std::strerror(errno));
  std::vector<char> chunk(8 << 20);
  for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<char>(i * 131 + 7);
  Timer t;
  bool ok = true;
  for (double written = 0; written < bytes && ok; written += static_cast<double>(chunk.size()))
    ok = ::write(fd, chunk.data(), chunk.size()) == static_cast<ssize_t>(chunk.size());
  ok = ok && ::fsync(fd) == 0;
  const double seconds = t.seconds();
  const int err = errno;
  ::close(fd);
  std::error_code ec;
  fs::remove(path, ec);
  if (!ok) AMLQ_FAIL(Output, "{}: disk probe write failed: {}", path.string(), std::strerror(err));
  return bytes / std::max(seconds, 1e-9);
}

}  // namespace

bool OpRates::has_host() const {
  for (const auto& k : kRateKeys)
    if (!k.device && !(this->*k.field > 0)) return false;
  return threads > 0;
}

bool OpRates::has_device() const {
  for (const auto& k : kRateKeys)
    if (k.device && !(this->*k.field > 0)) return false;
  return true;
}

OpRates parse_op_rates(const std::string& text, const std::string& source, OpRates base) {
  OpRates r = std::move(base);
  r.sources.push_back(source);
  std::string file_machine, file_measured;
  for (const auto& e : toml::parse_flat(text, source)) {
    if (e.key == "machine") {
      r.machine = file_machine = string_of(e, source);
      continue;
    }
    if (e.key == "measured") {
      r.measured = file_measured = string_of(e, source);
      continue;
    }
    if (e.key == "threads") {
      const double t = number_of(e, source);
      if (!(t >= 1 && t == std::floor(t))) AMLQ_FAIL(Input, "{}:{}: threads must be a whole number >= 1", source, e.line);
      r.threads = static_cast<int>(t);
      continue;
    }
    const auto* key = std::find_if(std::begin(kRateKeys), std::end(kRateKeys),
                                   [&](const RateKey& k) { return e.key == k.key; });
    if (key == std::end(kRateKeys)) AMLQ_FAIL(Input, "{}:{}: unknown key '{}'", source, e.line, e.key);
    const double v = number_of(e, source);
    if (!(v > 0) || !std::isfinite(v)) AMLQ_FAIL(Input, "{}:{}: '{}' must be a positive number, got {}", source, e.line, e.key, v);
    r.*(key->field) = v * key->unit;
  }
  std::string note = file_machine;
  if (!file_measured.empty()) note += (note.empty() ? "measured " : ", measured ") + file_measured;
  const std::string name = fs::path(source).filename().string();
  r.described.push_back(note.empty() ? name : fmt::format("{} ({})", name, note));
  return r;
}

OpRates load_op_rates(const std::vector<std::string>& files_or_names) {
  OpRates r;
  for (const auto& item : files_or_names) {
    std::string path = item;
    if (item.find('/') == std::string::npos && !item.ends_with(".toml")) {
      std::string tried;
      path = find_config_file("rates", item + ".toml", tried);
      if (path.empty()) AMLQ_FAIL(Usage, "rates '{}' not found (looked in {})", item, tried);
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) AMLQ_FAIL(Input, "{}: cannot open rates file", path);
    std::ostringstream text;
    text << in.rdbuf();
    r = parse_op_rates(text.str(), path, std::move(r));
  }
  return r;
}

double gptq_lazy_flops(double m, double n, int block) {
  // Blocks of `block` columns; after block [b0, b1) the n - b1 later columns get
  // an m x (b1 - b0) x (n - b1) update. Closed form of the sum over blocks.
  const double full = std::floor(n / block);
  double flops = 0;
  for (double b = 0; b < full; ++b) flops += 2.0 * m * block * std::max(0.0, n - (b + 1) * block);
  return flops;
}

OpRates measure_op_rates(const RateProbeOptions& options, const std::function<void(const std::string&)>& progress) {
  OpRates r;
  r.threads = resolve_threads(options.threads);
  set_compute_threads(r.threads);
  auto say = [&](const std::string& line) {
    if (progress) progress(line);
  };

  {  // fp32 GEMM, one thread (Eigen is built single-threaded).
    const int n = 1024;
    const MatrixF a = MatrixF::Random(n, n), b = MatrixF::Random(n, n);
    MatrixF c(n, n);
    const double s = best_seconds(3, [&] { c.noalias() = a * b; });
    r.gemm_f32_1t = 2.0 * n * n * n / s;
    say(fmt::format("fp32 GEMM {}^3, 1 thread: {:.1f} GFLOP/s", n, r.gemm_f32_1t / kGiga));
  }
  {  // fp32 GEMM as the forward pass runs it: the CPU backend's tiles on all threads.
    const int tokens = 2048, n = 2048, m = 2048;
    const MatrixF x = MatrixF::Random(tokens, n), w = MatrixF::Random(m, n);
    MatrixF y;
    const double s = best_seconds(3, [&] { cpu::linear(x, w, VectorF(), y); });
    r.gemm_f32_all = 2.0 * tokens * n * m / s;
    say(fmt::format("fp32 GEMM {}x{}x{} (CPU backend tiles), {} threads: {:.1f} GFLOP/s", tokens, n, m, r.threads,
                    r.gemm_f32_all / kGiga));
  }
  {  // fp64 GEMM, one thread.
    const int n = 768;
    const MatrixD a = MatrixD::Random(n, n), b = MatrixD::Random(n, n);
    MatrixD c(n, n);
    const double s = best_seconds(3, [&] { c.noalias() = a * b; });
    r.gemm_f64_1t = 2.0 * n * n * n / s;
    say(fmt::format("fp64 GEMM {}^3, 1 thread: {:.1f} GFLOP/s", n, r.gemm_f64_1t / kGiga));
  }
  double chol_inverse_1024 = 0;
  {  // Cholesky alone, then Cholesky + triangular inverse (what GPTQ does).
    const int n = 1536;
    const MatrixD h = random_spd(n, 1);
    const double chol = best_seconds(3, [&] {
      Eigen::LLT<MatrixD> llt(h);
      if (llt.info() != Eigen::Success) AMLQ_FAIL(Internal, "rate probe: Cholesky failed");
    });
    r.cholesky_f64_1t = static_cast<double>(n) * n * n / 3.0 / chol;
    MatrixD u;
    const double both = best_seconds(3, [&] {
      if (!inverse_cholesky_upper(h, u)) AMLQ_FAIL(Internal, "rate probe: inverse Cholesky failed");
    });
    // The remainder is the triangular inverse (and two n^2 copies).
    r.trinv_f64_1t = static_cast<double>(n) * n * n / 3.0 / std::max(both - chol, 0.1 * chol);
    say(fmt::format("fp64 Cholesky n={}: {:.1f} GFLOP/s; triangular inverse: {:.1f} GFLOP/s", n,
                    r.cholesky_f64_1t / kGiga, r.trinv_f64_1t / kGiga));
    const MatrixD h1024 = random_spd(1024, 2);
    chol_inverse_1024 = best_seconds(2, [&] { inverse_cholesky_upper(h1024, u); });
  }
  {  // GPTQ's lazy updates alone (the GEMMs of quant/gptq.cc on W^T), then one
     // whole GPTQ: the rest, less the factorization, is its column loop.
    const int m = 2048, n = 1024, block = 128;
    MatrixF wt = MatrixF::Random(n, m);
    const MatrixF uf = MatrixF::Random(n, n), err = MatrixF::Random(block, m);
    const double lazy = best_seconds(2, [&] {
      for (int begin = 0; begin + block < n; begin += block) {
        const int end = begin + block;
        wt.bottomRows(n - end).noalias() -= uf.block(begin, end, block, n - end).transpose() * err;
      }
    });
    r.gptq_update_1t = gptq_lazy_flops(m, n, block) / lazy;
    const MatrixF w = MatrixF::Random(m, n);
    const MatrixD h = random_spd(n, 2);
    GptqOptions gptq;
    gptq.block_size = block;
    const QuantSpec spec = QuantSpec::parse("4b-g128");
    const double whole = best_seconds(2, [&] { gptq_quantize(w, h, spec, gptq); });
    r.gptq_columns_1t = static_cast<double>(m) * n / std::max(whole - chol_inverse_1024 - lazy, 0.1 * whole);
    say(fmt::format("GPTQ {}x{} (4b-g128, act-order): {:.3f}s; lazy updates {:.1f} GFLOP/s, column loop {:.0f} M "
                    "weights/s",
                    m, n, whole, r.gptq_update_1t / kGiga, r.gptq_columns_1t / 1e6));
  }
  {  // The symmetric eigensolver behind cpu::svd.
    const int n = 768;
    const MatrixD g = random_spd(n, 3);
    const double s = best_seconds(1, [&] {
      Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(g);
      if (eig.info() != Eigen::Success) AMLQ_FAIL(Internal, "rate probe: eigensolver failed");
    });
    r.eigensolver_f64_1t = 9.0 * n * n * n / s;
    say(fmt::format("symmetric eigensolver n={}: {:.3f}s ({:.2f} GFLOP/s at 9 n^3)", n, s,
                    r.eigensolver_f64_1t / kGiga));
  }
  {  // Memory bandwidth: 3 x 64 MiB arrays (far beyond any cache).
    const size_t count = size_t{8} << 20;
    std::vector<double> a(count, 1.0), b(count, 2.0), y(count, 0.0);
    r.memory_1t = triad_rate(a, b, y, 1);
    r.memory_all = triad_rate(a, b, y, r.threads);
    say(fmt::format("memory (triad, 3 x {} MiB): {:.1f} GB/s on 1 thread, {:.1f} GB/s on {}", count * 8 >> 20,
                    r.memory_1t / kGiga, r.memory_all / kGiga, r.threads));
  }
  r.disk_write = disk_write_rate(options.disk_dir, options.disk_bytes);
  say(fmt::format("disk write + fsync, {:.0f} MiB in {}: {:.2f} GB/s", options.disk_bytes / (1 << 20),
                  options.disk_dir, r.disk_write / kGiga));
  // Not measurable on one machine: stated assumptions, edited by hand.
  r.disk_read = 2.0 * kGiga;
  r.network = 10.0 * kGiga;
  return r;
}

std::string op_rates_toml(const OpRates& r, const std::vector<std::string>& header) {
  std::string out;
  for (const auto& line : header) out += line.empty() ? "#\n" : "# " + line + "\n";
  if (!header.empty()) out += "\n";
  if (!r.machine.empty()) out += fmt::format("machine = \"{}\"\n", r.machine);
  if (!r.measured.empty()) out += fmt::format("measured = \"{}\"\n", r.measured);
  out += fmt::format("threads = {}\n", r.threads);
  for (const auto& k : kRateKeys) {
    const double v = r.*(k.field);
    if (!(v > 0)) continue;
    std::string note;
    if (std::string_view(k.key) == "disk_read_gbs" || std::string_view(k.key) == "network_gbs")
      note = "  # assumption, not measured";
    out += fmt::format("{} = {:.3f}{}\n", k.key, v / k.unit, note);
  }
  return out;
}

}  // namespace amlq
