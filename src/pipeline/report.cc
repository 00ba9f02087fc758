#include "pipeline/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "core/memory.h"

namespace amlq {

nlohmann::ordered_json report_json(const QuantizeReport& r) {
  nlohmann::ordered_json j;
  j["tool"] = std::string("amlq ") + AMLQ_VERSION;
  j["model"] = r.model;
  j["out"] = r.out;
  j["target_bpw"] = r.target_bpw;
  j["achieved_bpw"] = r.achieved_bpw;
  j["search"] = r.search;
  j["quantizer"] = r.quantizer;
  j["lowrank"] = r.lowrank;
  j["recipes"] = r.recipes;
  j["sequential"] = r.sequential;
  j["calibration"] = r.calibration;
  j["quantized_params"] = r.quantized_params;
  j["candidates_measured"] = r.candidates;
  j["ranks"] = r.ranks;
  j["loss_weighted"] = r.loss_weighted;
  j["predicted_delta_nll"] = r.predicted_delta_nll;
  if (!r.validation.empty()) {
    auto& v = j["validation"] = {{"windows", r.validation_windows},
                                 {"seqlen", r.validation_seqlen},
                                 {"data", r.validation_data},
                                 {"plans", nlohmann::ordered_json::array()}};
    for (const auto& p : r.validation)
      v["plans"].push_back({{"method", p.method},
                            {"bpw", p.bpw},
                            {"predicted_delta_nll", p.predicted_delta_nll},
                            {"validation_delta_nll", p.validation_delta_nll},
                            {"chosen", p.chosen}});
  }
  if (r.eval) {
    j["fp_ppl"] = r.eval->fp_ppl;
    j["quantized_ppl"] = r.eval->quantized_ppl;
    j["eval"] = {{"data", r.eval->data},
                 {"seqlen", r.eval->seqlen},
                 {"windows", r.eval->windows},
                 {"scored_tokens", r.eval->scored_tokens},
                 {"fp_mean_nll", r.eval->fp_nll},
                 {"quantized_mean_nll", r.eval->quantized_nll},
                 {"measured_delta_nll", r.eval->quantized_nll - r.eval->fp_nll}};
  } else {
    j["fp_ppl"] = nullptr;
    j["quantized_ppl"] = nullptr;
  }
  j["seconds"] = {{"calibrate", r.seconds.calibrate}, {"measure", r.seconds.measure},
                  {"sensitivity", r.seconds.sensitivity}, {"search", r.seconds.search},
                  {"pack", r.seconds.pack},           {"eval", r.seconds.eval},       {"total", r.seconds.total}};
  j["resumed_stages"] = r.resumed;
  auto& resources = j["resources"] = nlohmann::ordered_json::object();
  resources["work_dir_bytes"] = r.work_dir_bytes;
  resources["memory_turns"] = r.memory_turns;
  auto& ranks = resources["ranks"] = nlohmann::ordered_json::array();
  for (const auto& rr : r.rank_resources)
    ranks.push_back({{"rank", rr.rank},
                     {"layers", rr.layers},
                     {"peak_rss_bytes", rr.peak_rss},
                     {"predicted_peak_rss_bytes", rr.predicted_peak_rss},
                     {"predicted_peak_phase", rr.predicted_phase},
                     {"peak_device_bytes", rr.peak_device},
                     {"turn_waited_seconds", rr.turn_waited_seconds},
                     {"turn_started_unix", rr.turn_started},
                     {"turn_ended_unix", rr.turn_ended}});
  auto& layers = j["layers"] = nlohmann::ordered_json::array();
  for (const auto& l : r.layers)
    layers.push_back({{"name", l.name},
                      {"spec", l.spec},
                      {"code_bits", l.code_bits},
                      {"rank", l.rank},
                      {"bpw", l.bpw},
                      {"eps", l.eps},
                      {"eps_measured", l.eps_measured},
                      {"alpha", l.alpha},
                      {"params", l.numel}});
  return j;
}

std::string report_table(const QuantizeReport& r) {
  std::string out;
  out += fmt::format("{:<34} {:>7} {:<24} {:>4} {:>7} {:>10}\n", "linear", "params", "config", "rank", "bpw", "eps");
  for (const auto& l : r.layers)
    out += fmt::format("{:<34} {:>7} {:<24} {:>4} {:>7.3f} {:>10.3e}\n", l.name, l.numel, l.spec, l.rank, l.bpw, l.eps);
  out += fmt::format("\nmodel           {}\n", r.model);
  out += fmt::format("output          {}\n", r.out);
  out += fmt::format("calibration     {}\n", r.calibration);
  out += fmt::format("method          {} + {} low-rank, search {}, recipes {}\n", r.quantizer, r.lowrank, r.search,
                     r.recipes);
  out += fmt::format("bits per weight {:.4f} achieved (target {:.4f}) over {} quantized parameters\n", r.achieved_bpw,
                     r.target_bpw, r.quantized_params);
  if (r.eval) {
    out += fmt::format("perplexity      FP {:.4f} -> quantized {:.4f} ({:+.2f}%)  [{} windows x {} tokens of {}]\n",
                       r.eval->fp_ppl, r.eval->quantized_ppl, 100.0 * (r.eval->quantized_ppl / r.eval->fp_ppl - 1.0),
                       r.eval->windows, r.eval->seqlen, r.eval->data);
  }
  if (r.predicted_delta_nll > 0)
    out += fmt::format("loss increase   predicted {:.4f} nats/token from the sensitivities{}{}\n", r.predicted_delta_nll,
                       r.eval ? fmt::format(", measured {:.4f}", r.eval->quantized_nll - r.eval->fp_nll) : "",
                       r.loss_weighted ? " (the search minimized it)" : "");
  for (const auto& p : r.validation)
    out += fmt::format(
        "validation      {:<26} {:.4f} bpw: NLL +{:.4f} on {} held-out windows x {} (predicted +{:.4f}){}\n", p.method,
        p.bpw, p.validation_delta_nll, r.validation_windows, r.validation_seqlen, p.predicted_delta_nll,
        p.chosen ? "  <- packed" : "");
  out += fmt::format("seconds         calibrate {:.1f}, measure {:.1f}, sensitivity {:.1f}, search {:.2f}, pack {:.1f}, "
                     "eval {:.1f}, total {:.1f}\n",
                     r.seconds.calibrate, r.seconds.measure, r.seconds.sensitivity, r.seconds.search, r.seconds.pack,
                     r.seconds.eval, r.seconds.total);
  if (!r.resumed.empty()) out += fmt::format("resumed         {}\n", fmt::join(r.resumed, ", "));
  for (const auto& rr : r.rank_resources)
    out += fmt::format("memory          rank {} layers {}: peak RSS {} (predicted {}, {}){}{}\n", rr.rank, rr.layers,
                       format_bytes(static_cast<double>(rr.peak_rss)), format_bytes(static_cast<double>(rr.predicted_peak_rss)),
                       rr.predicted_phase,
                       rr.peak_device ? fmt::format(", GPU peak {}", format_bytes(static_cast<double>(rr.peak_device))) : "",
                       rr.turn_waited_seconds > 0 ? fmt::format(", waited {:.1f}s for memory turns", rr.turn_waited_seconds)
                                                  : "");
  if (!r.rank_resources.empty())
    out += fmt::format("work directory  {}\n", format_bytes(static_cast<double>(r.work_dir_bytes)));
  return out;
}

std::string allocation_svg(const QuantizeReport& r) {
  // Two panels sharing the x axis (decoder layer): bits per weight, and rank.
  std::map<std::string, std::vector<const ReportLayer*>> series;
  int max_layer = 0;
  double max_bpw = 1;
  int max_rank = 1;
  for (const auto& l : r.layers) {
    series[l.linear].push_back(&l);
    max_layer = std::max(max_layer, l.layer);
    max_bpw = std::max(max_bpw, l.bpw);
    max_rank = std::max(max_rank, l.rank);
  }
  const double width = 760, panel_h = 220, left = 60, right = 170, top = 40, gap = 60;
  const double plot_w = width - left - right;
  const double height = top + 2 * panel_h + gap + 50;
  const char* colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};
  auto x_of = [&](int layer) { return left + (max_layer == 0 ? plot_w / 2 : plot_w * layer / max_layer); };
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" "
      "font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{}\" y=\"20\" font-size=\"14\">{} at {:.3f} bpw ({} search)</text>\n",
      width, height, left, r.model, r.achieved_bpw, r.search);
  auto panel = [&](double y0, const std::string& label, double y_max, auto value_of) {
    svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#444\"/>\n", left, y0,
                       plot_w, panel_h);
    svg += fmt::format("<text x=\"12\" y=\"{}\" transform=\"rotate(-90 12 {})\">{}</text>\n", y0 + panel_h / 2,
                       y0 + panel_h / 2, label);
    for (int t = 0; t <= 4; ++t) {
      const double v = y_max * t / 4;
      const double y = y0 + panel_h - panel_h * t / 4;
      svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{:.3g}</text>\n", left - 6, y + 4, v);
      svg += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#ddd\"/>\n", left, y, left + plot_w, y);
    }
    int c = 0;
    for (const auto& [linear, points] : series) {
      std::string path;
      for (const auto* p : points) {
        const double y = y0 + panel_h - panel_h * value_of(*p) / y_max;
        path += fmt::format("{:.1f},{:.1f} ", x_of(p->layer), y);
        svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"/>\n", x_of(p->layer), y,
                           colors[c % 8]);
      }
      svg += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\"/>\n", path,
                         colors[c % 8]);
      ++c;
    }
  };
  panel(top, "bits per weight", std::ceil(max_bpw), [](const ReportLayer& l) { return l.bpw; });
  panel(top + panel_h + gap, "low-rank rank", static_cast<double>(max_rank), [](const ReportLayer& l) {
    return static_cast<double>(l.rank);
  });
  for (int t = 0; t <= max_layer; t += std::max(1, max_layer / 10))
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", x_of(t),
                       top + 2 * panel_h + gap + 16, t);
  svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">decoder layer</text>\n", left + plot_w / 2,
                     top + 2 * panel_h + gap + 36);
  int c = 0;
  for (const auto& [linear, points] : series) {
    const double y = top + 10 + 18 * c;
    svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/>\n", left + plot_w + 15, y - 10,
                       colors[c % 8]);
    svg += fmt::format("<text x=\"{}\" y=\"{}\">{}</text>\n", left + plot_w + 32, y, linear);
    ++c;
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace amlq
