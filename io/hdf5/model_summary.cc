#include "core/format.h"
#include "io/hdf5/model_summary.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <iterator>

#include "io/hdf5/quantized_model.h"

namespace amlq {

namespace {

std::string or_dash(const std::string& s) { return s.empty() ? "-" : s; }

std::string parts_text(const PackedLinear& l) {
  std::string text;
  for (const auto& p : l.parts)
    text += fmt::format("{}{}b/g{}x{}", text.empty() ? "" : " ", p.bits, p.group, p.col_end - p.col_begin);
  return text;
}

}  // namespace

std::string summarize_quantized_model(const std::string& path) {
  const QuantizedModel model = read_quantized_model(path, /*load_tensors=*/false);
  const auto& h = model.header;
  const auto file_bytes = static_cast<int64_t>(std::filesystem::file_size(path));
  std::string out;
  fmt::format_to(std::back_inserter(out), "file         {} (amlq format v{}, written by amlq {})\n", path,
                 h.format_version, h.tool_version);
  fmt::format_to(std::back_inserter(out), "source model {}\n", or_dash(h.source_model));
  fmt::format_to(std::back_inserter(out), "bpw          target {:.4f}, achieved {:.4f}\n", h.target_bpw,
                 h.achieved_bpw);
  fmt::format_to(std::back_inserter(out), "method       search {}, quantizer {}, low-rank {}\n",
                 or_dash(h.search_method), or_dash(h.quantizer), or_dash(h.lowrank_method));
  fmt::format_to(std::back_inserter(out), "calibration  {}\n", or_dash(h.calibration));
  out += "\n";

  size_t name_width = 6;
  for (const auto& l : model.linears) name_width = std::max(name_width, l.name.size());
  fmt::format_to(std::back_inserter(out), "{:<{}}  {:>12}  {:<24} {:<28} {:>5} {:>7} {:>10}\n", "linear", name_width,
                 "shape", "spec", "parts (bits/group x cols)", "rank", "bpw", "eps");
  int64_t params = 0;
  double weighted_bits = 0;
  for (const auto& l : model.linears) {
    const int64_t numel = int64_t{l.rows} * l.cols;
    params += numel;
    weighted_bits += l.bpw * static_cast<double>(numel);
    fmt::format_to(std::back_inserter(out), "{:<{}}  {:>12}  {:<24} {:<28} {:>5} {:>7.4f} {:>10.3e}\n", l.name,
                   name_width, fmt::format("{}x{}", l.rows, l.cols), l.spec.label(), parts_text(l), l.rank, l.bpw,
                   l.eps);
  }
  int64_t passthrough_params = 0;
  for (const auto& t : model.passthrough) passthrough_params += t.numel();
  out += "\n";
  fmt::format_to(std::back_inserter(out),
                 "totals       {} linears, {} quantized parameters, average {:.4f} bpw (weighted by parameters)\n",
                 model.linears.size(), with_commas(params), params ? weighted_bits / static_cast<double>(params) : 0.0);
  fmt::format_to(std::back_inserter(out), "passthrough  {} tensors, {} parameters\n", model.passthrough.size(),
                 with_commas(passthrough_params));
  size_t candidates = 0;
  for (const auto& m : model.measurements) candidates += m.candidates.size();
  fmt::format_to(std::back_inserter(out), "measurements {} layers, {} candidate configurations\n",
                 model.measurements.size(), candidates);
  fmt::format_to(std::back_inserter(out), "file size    {} bytes\n", with_commas(file_bytes));
  return out;
}

}  // namespace amlq
