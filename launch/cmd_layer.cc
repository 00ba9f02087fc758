// amlq layer: quantize one weight matrix with one configuration and print eps, bpw, time.
#include <fmt/format.h>

#include <cstring>
#include <optional>

#include "backend/backend.h"
#include "core/error.h"
#include "core/fp16.h"
#include "core/log.h"
#include "core/timer.h"
#include "io/safetensors.h"
#include "launch/commands.h"
#include "lowrank/decompose.h"
#include "quant/cost_model.h"
#include "quant/error.h"
#include "quant/pack.h"
#include "quant/packed_format.h"
#include "quant/quantizer.h"

namespace amlq::cli {
namespace {

struct LayerOptions {
  std::string weight, hessian, act_scale, out;
  int bits = 4;
  int group = 128;
  std::string spec;
  bool act_order = false;
  std::string quantizer = "gptq";
  int rank = 0;
  std::string lowrank = "whiten";
  std::string factor_format = "fp16";
  double damp = 0.01;
};

// The one tensor a file holds, as float64 (F64 stays exact).
struct SingleTensor {
  std::vector<int64_t> shape;
  std::vector<double> data;
};

SingleTensor read_single_tensor(const std::string& path, const char* what) {
  const auto file = SafetensorsFile::open(path);
  if (file->tensors().size() != 1)
    AMLQ_FAIL(Input, "{}: the {} file must hold exactly one tensor, it holds {}", path, what, file->tensors().size());
  const auto& [name, info] = *file->tensors().begin();
  SingleTensor t;
  t.shape = info.shape;
  if (info.dtype == DType::F64) {
    const auto raw = file->raw(name);
    t.data.resize(raw.size() / sizeof(double));
    std::memcpy(t.data.data(), raw.data(), t.data.size() * sizeof(double));
  } else {
    AMLQ_REQUIRE(is_float(info.dtype), "{}: tensor '{}' has dtype {}, expected a float type", path, name,
                 dtype_name(info.dtype));
    const TensorF32 f = file->read_f32(name);
    t.data.assign(f.data.begin(), f.data.end());
  }
  for (double v : t.data)
    if (!std::isfinite(v)) AMLQ_FAIL(Input, "{}: tensor '{}' contains NaN or inf", path, name);
  return t;
}

template <typename T>
std::span<const std::byte> bytes_of(const std::vector<T>& v) {
  return std::as_bytes(std::span<const T>(v));
}

void write_packed(const std::string& path, const PackedLinear& p) {
  SafetensorsWriter out;
  out.set_metadata("format", "amlq-layer");
  out.set_metadata("format_version", std::to_string(packed::kFormatVersion));
  out.set_metadata("spec", p.spec.label());
  out.set_metadata("rows", std::to_string(p.rows));
  out.set_metadata("cols", std::to_string(p.cols));
  out.set_metadata("eps", fmt::format("{:.9g}", p.eps));
  out.set_metadata("bpw", fmt::format("{:.9g}", p.bpw));
  out.set_metadata("lowrank", lowrank_method_name(p.lowrank));
  out.set_metadata("rank", std::to_string(p.rank));
  out.set_metadata("factor_format", factor_format_name(p.factor_format));
  for (size_t i = 0; i < p.parts.size(); ++i) {
    const auto& part = p.parts[i];
    const std::string prefix = fmt::format("part{}.", i);
    out.set_metadata(prefix + "columns", fmt::format("{}:{}", part.col_begin, part.col_end));
    out.set_metadata(prefix + "bits", std::to_string(part.bits));
    out.set_metadata(prefix + "group", std::to_string(part.group));
    const int64_t width = part.col_end - part.col_begin;
    out.add(prefix + "codes", DType::U32, {p.rows, packed::words_per_row(width, part.bits)}, bytes_of(part.codes));
    out.add(prefix + "scales", DType::F16, {p.rows, part.num_groups}, bytes_of(part.scales));
    out.add(prefix + "zeros", DType::U32, {p.rows, packed::words_per_row(part.num_groups, part.bits)},
            bytes_of(part.zeros));
  }
  if (!p.perm.empty()) out.add("perm", DType::I32, {p.cols}, bytes_of(p.perm));
  if (p.rank > 0) {
    if (p.factor_format == FactorFormat::Fp16) {
      out.add("lowrank.a", DType::F16, {p.rows, p.rank}, bytes_of(p.a_fp16));
      out.add("lowrank.b", DType::F16, {p.rank, p.cols}, bytes_of(p.b_fp16));
    } else {
      out.add("lowrank.a", DType::I8, {p.rows, p.rank}, bytes_of(p.a_int8));
      out.add("lowrank.a_scales", DType::F16, {p.rows}, bytes_of(p.a_scales));
      out.add("lowrank.b", DType::I8, {p.rank, p.cols}, bytes_of(p.b_int8));
      out.add("lowrank.b_scales", DType::F16, {p.rank}, bytes_of(p.b_scales));
    }
  }
  out.write(path);
}

void run_layer(const GlobalOptions& global, const LayerOptions& o) {
  QuantSpec spec;
  if (!o.spec.empty()) {
    spec = QuantSpec::parse(o.spec);
  } else {
    spec.parts = {QuantPart{o.bits, o.group, 1.0}};
    spec.act_order = o.act_order;
  }
  if (o.quantizer != "gptq" && o.quantizer != "rtn")
    AMLQ_FAIL(Usage, "--quantizer must be gptq or rtn, not '{}'", o.quantizer);
  if (o.rank < 0) AMLQ_FAIL(Usage, "--rank must be >= 0, not {}", o.rank);
  if (!(o.damp >= 0)) AMLQ_FAIL(Usage, "--damp must be >= 0, not {}", o.damp);
  const LowRankMethod method = o.rank > 0 ? parse_lowrank_method(o.lowrank) : LowRankMethod::None;
  if (o.rank > 0 && method == LowRankMethod::None) AMLQ_FAIL(Usage, "--rank {} needs --lowrank svd|l2qer|whiten", o.rank);
  const FactorFormat format = parse_factor_format(o.factor_format);
  if (method == LowRankMethod::L2qer && o.act_scale.empty())
    AMLQ_FAIL(Usage, "--lowrank l2qer needs --act-scale (per-input mean |x|)");

  const SingleTensor wt = read_single_tensor(o.weight, "weight");
  if (wt.shape.size() != 2) AMLQ_FAIL(Input, "{}: the weight must be 2-D, it has {} dimensions", o.weight, wt.shape.size());
  const int rows = static_cast<int>(wt.shape[0]), cols = static_cast<int>(wt.shape[1]);
  const SingleTensor ht = read_single_tensor(o.hessian, "Hessian");
  if (ht.shape.size() != 2 || ht.shape[0] != cols || ht.shape[1] != cols)
    AMLQ_FAIL(Input, "{}: the Hessian has shape [{}], the weight {} needs [{}, {}]", o.hessian,
              fmt::join(ht.shape, ", "), o.weight, cols, cols);
  VectorD act_scale;
  if (!o.act_scale.empty()) {
    const SingleTensor st = read_single_tensor(o.act_scale, "activation scale");
    if (st.data.size() != static_cast<size_t>(cols))
      AMLQ_FAIL(Input, "{}: the activation scale has {} entries, the weight {} has {} columns", o.act_scale,
                st.data.size(), o.weight, cols);
    act_scale = Eigen::Map<const VectorD>(st.data.data(), cols);
  }
  spec.validate(rows, cols, o.weight);

  MatrixF w(rows, cols);
  for (Eigen::Index i = 0; i < w.size(); ++i) w.data()[i] = static_cast<float>(wt.data[i]);
  const MatrixD h = Eigen::Map<const MatrixD>(ht.data.data(), cols, cols);
  const auto backend = make_backend(global.backend);

  GptqOptions options;
  options.damp = o.damp;
  options.error_feedback = o.quantizer == "gptq";
  Timer total;
  const QuantizedMatrix q = backend->quantize(w, h, spec, options);
  const double quantize_s = total.seconds();
  if (q.damp_escalations > 0) AMLQ_LOG_WARN("{}: dampening raised to {:g}", o.weight, q.damp_used);

  const MatrixF w_hat = dequantize(q);
  const double reference = weighted_sq_norm(w, h);
  const double error = q.output_error >= 0 ? q.output_error : weighted_sq_norm(MatrixF(w - w_hat), h);
  const double eps_quant = normalize_error(error, reference);
  double eps = eps_quant;
  std::optional<LowRankFactors> factors;
  double lowrank_s = 0;
  if (method != LowRankMethod::None) {
    Timer t;
    LowRankOptions lo;
    lo.damp = o.damp;
    lo.weight_norm_h = reference;
    lo.error_norm_h = error;
    const auto d = decompose_error(*backend, w, w_hat, h, act_scale, method, o.rank, lo);
    factors = d.factors(o.rank, format);
    eps = lowrank_eps(w, w_hat, h, *factors, reference);
    lowrank_s = t.seconds();
  }
  PackedLinear packed = pack_linear(o.weight, q, factors ? &*factors : nullptr, method);
  packed.eps = eps;
  const double seconds = total.seconds();

  fmt::print("weight    {} [{} x {}]\n", o.weight, rows, cols);
  fmt::print("spec      {} ({}, damp {:g}{})\n", spec.label(), o.quantizer, q.damp_used > 0 ? q.damp_used : o.damp,
             q.dead_columns ? fmt::format(", {} dead columns", q.dead_columns) : std::string());
  if (method != LowRankMethod::None) {
    fmt::print("lowrank   {} rank {} {}\n", lowrank_method_name(method), packed.rank, factor_format_name(format));
    fmt::print("eps       {:.6e} (quantization alone {:.6e})\n", eps, eps_quant);
  } else {
    fmt::print("eps       {:.6e}\n", eps);
  }
  fmt::print("bpw       {:.6f}\n", packed.bpw);
  fmt::print("time      {:.3f} s (quantize {:.3f} s, low-rank {:.3f} s)\n", seconds, quantize_s, lowrank_s);
  if (!o.out.empty()) {
    write_packed(o.out, packed);
    fmt::print("wrote     {}\n", o.out);
  }
}

}  // namespace

void add_layer_command(CLI::App& app, const GlobalOptions& global, Runner& run) {
  auto* cmd = app.add_subcommand("layer", "Quantize one weight matrix with one configuration and print eps, bpw, time");
  auto o = std::make_shared<LayerOptions>();
  cmd->add_option("--weight", o->weight, "safetensors file holding the weight (m x n)")->required();
  cmd->add_option("--hessian", o->hessian, "safetensors file holding its Hessian (n x n, 2/N X X^T)")->required();
  cmd->add_option("--act-scale", o->act_scale, "safetensors file holding the per-input mean |x| (L2QER)");
  cmd->add_option("--bits", o->bits, "Bits per weight, 2..8")->capture_default_str();
  cmd->add_option("--group", o->group, "Group size (0 = whole row)")->capture_default_str();
  cmd->add_option("--spec", o->spec, "Full spec label, e.g. 25%4b-g64+75%3b-g128 (overrides --bits/--group/--act-order)");
  cmd->add_flag("--act-order", o->act_order, "Process columns by descending Hessian diagonal");
  cmd->add_option("--quantizer", o->quantizer, "gptq or rtn")->capture_default_str();
  cmd->add_option("--rank", o->rank, "Low-rank correction rank (0 = none)")->capture_default_str();
  cmd->add_option("--lowrank", o->lowrank, "svd, l2qer or whiten")->capture_default_str();
  cmd->add_option("--factor-format", o->factor_format, "fp16 or int8")->capture_default_str();
  cmd->add_option("--damp", o->damp, "Dampening lambda (H += lambda mean(diag H) I)")->capture_default_str();
  cmd->add_option("--out", o->out, "Write the packed result (codes, scales, zeros, perm, A, B) as safetensors");
  cmd->callback([&run, &global, o] { run = [&global, o] { run_layer(global, *o); }; });
}

}  // namespace amlq::cli
