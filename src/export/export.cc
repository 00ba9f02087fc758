#include "export/export.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <tuple>

#include "core/error.h"
#include "core/fp16.h"
#include "core/log.h"
#include "core/timer.h"
#include "export/gptq_format.h"
#include "export/gptq_linear.h"
#include "export/lowrank_adapter.h"
#include "export/output_directory.h"
#include "export/requantize.h"
#include "io/hdf5/quantized_model.h"
#include "io/model_config.h"
#include "quant/cost_model.h"
#include "quant/pack.h"

namespace amlq {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

ExportFormat parse_export_format(std::string_view name) {
  if (name == "dequant") return ExportFormat::Dequant;
  if (name == "gptq") return ExportFormat::Gptq;
  AMLQ_FAIL(Usage, "--format '{}' is not one of dequant, gptq", name);
}

DType parse_export_dtype(std::string_view name) {
  if (name == "f32" || name == "fp32" || name == "float32") return DType::F32;
  if (name == "fp16" || name == "f16" || name == "float16") return DType::F16;
  if (name == "bf16" || name == "bfloat16") return DType::BF16;
  AMLQ_FAIL(Usage, "--dtype '{}' is not one of f32, fp16, bf16", name);
}

namespace {

template <typename... Args>
void append(std::string& out, fmt::format_string<Args...> format, Args&&... args) {
  fmt::format_to(std::back_inserter(out), format, std::forward<Args>(args)...);
}


const char* torch_dtype_name(DType d) {
  switch (d) {
    case DType::F32: return "float32";
    case DType::F16: return "float16";
    case DType::BF16: return "bfloat16";
    default: return "float32";
  }
}

// The dtype the source checkpoint stored its float tensors in (F32 if none).
DType source_float_dtype(const QuantizedModel& layout) {
  for (const auto& t : layout.passthrough)
    if (is_float(t.dtype)) return t.dtype;
  return DType::F32;
}

std::vector<std::byte> encode_floats(const float* v, size_t n, DType dtype) {
  std::vector<std::byte> out(n * dtype_size(dtype));
  switch (dtype) {
    case DType::F32:
      std::memcpy(out.data(), v, n * sizeof(float));
      break;
    case DType::F16:
    case DType::BF16: {
      auto* dst = reinterpret_cast<uint16_t*>(out.data());
      for (size_t i = 0; i < n; ++i) dst[i] = dtype == DType::F16 ? float_to_fp16(v[i]) : float_to_bf16(v[i]);
      break;
    }
    default:
      AMLQ_ASSERT(false, "cannot encode floats as {}", dtype_name(dtype));
  }
  return out;
}

template <typename T>
std::vector<std::byte> raw_bytes(const std::vector<T>& v) {
  const auto* p = reinterpret_cast<const std::byte*>(v.data());
  return std::vector<std::byte>(p, p + v.size() * sizeof(T));
}

// A passthrough tensor in `dtype` (float tensors converted, others as stored).
std::vector<std::byte> passthrough_bytes(const PassthroughTensor& t, std::optional<DType> dtype) {
  if (!dtype || !is_float(t.dtype) || t.dtype == *dtype) return t.data;
  std::vector<float> f(static_cast<size_t>(t.numel()));
  convert_to_f32(t.dtype, t.data.data(), f.size(), f.data());
  return encode_floats(f.data(), f.size(), *dtype);
}

// Tensor order in the files: embedding, decoder layers in order, then the rest
// (final norm, lm_head); by name inside each.
std::tuple<int, int, std::string> order_key(const std::string& name) {
  static const std::string layers = "model.layers.";
  if (name.rfind(layers, 0) == 0) {
    const auto rest = name.substr(layers.size());
    try {
      return {1, std::stoi(rest.substr(0, rest.find('.'))), name};
    } catch (const std::exception&) {
    }
  }
  if (name.rfind("model.embed_tokens.", 0) == 0) return {0, 0, name};
  return {2, 0, name};
}

void sort_entries(std::vector<TensorEntry>& entries) {
  std::stable_sort(entries.begin(), entries.end(),
                   [](const TensorEntry& a, const TensorEntry& b) { return order_key(a.name) < order_key(b.name); });
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::trunc);
  f << text;
  if (!f) AMLQ_FAIL(Output, "{}: write failed", path.string());
}

ojson parse_config(const QuantizedModel& layout, const std::string& h5) {
  try {
    return ojson::parse(layout.header.config_json);
  } catch (const std::exception& e) {
    AMLQ_FAIL(Input, "{}: config_json is not valid JSON: {}", h5, e.what());
  }
}

// The checkpoint's LinearSpec of a stored linear ("model.layers.3.mlp.down_proj").
const LinearSpec& spec_of(const std::vector<LinearSpec>& specs, const std::string& name, const std::string& h5) {
  for (const auto& s : specs)
    if (name.size() > s.name.size() && name.ends_with("." + s.name)) return s;
  AMLQ_FAIL(Input, "{}: linear '{}' is not a decoder linear of the architecture in config_json", h5, name);
}

const std::vector<std::string> kTokenizerFiles = {
    "tokenizer.json",    "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json",
    "added_tokens.json", "vocab.json",            "merges.txt",      "generation_config.json"};

std::vector<std::string> copy_tokenizer_files(const std::string& source, const fs::path& dst,
                                              std::vector<std::string>& warnings) {
  std::vector<std::string> copied;
  std::error_code ec;
  if (source.empty() || !fs::is_directory(source, ec)) {
    warnings.push_back(fmt::format("tokenizer files not copied: the source model directory '{}' does not exist "
                                   "(pass --model DIR)",
                                   source));
    return copied;
  }
  for (const auto& entry : fs::directory_iterator(source, ec)) {
    const std::string name = entry.path().filename().string();
    const bool llama2c = name.starts_with("tok") && name.ends_with(".bin");
    if (!entry.is_regular_file() ||
        (!llama2c && std::find(kTokenizerFiles.begin(), kTokenizerFiles.end(), name) == kTokenizerFiles.end()))
      continue;
    fs::copy_file(entry.path(), dst / name, fs::copy_options::overwrite_existing, ec);
    if (ec) AMLQ_FAIL(Output, "{}: cannot copy {}: {}", (dst / name).string(), entry.path().string(), ec.message());
    // Sources may be read-only (shared model stores); the copy belongs to the user.
    fs::permissions(dst / name, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::add, ec);
    copied.push_back(name);
  }
  std::sort(copied.begin(), copied.end());
  if (copied.empty()) warnings.push_back(fmt::format("no tokenizer files found in '{}'", source));
  return copied;
}

std::vector<std::string> list_files(const fs::path& dir) {
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) files.push_back(fs::relative(e.path(), dir).string());
  std::sort(files.begin(), files.end());
  return files;
}

// ---------------------------------------------------------------- dequant

void export_dequant(const QuantizedModelFile& file, const ExportOptions& options, const fs::path& dir,
                    ExportSummary& summary) {
  const QuantizedModel& layout = file.layout();
  const std::string& h5 = file.path();
  const DType dtype = options.dtype.value_or(source_float_dtype(layout));
  summary.dtype = torch_dtype_name(dtype);
  const ModelConfig config = parse_model_config(layout.header.config_json, h5 + " (config_json)");
  const auto specs = decoder_linears(config);

  std::vector<TensorEntry> entries;
  std::map<std::string, std::pair<size_t, bool>> linear_of;  // tensor -> (linear, is bias)
  std::map<std::string, size_t> passthrough_of;
  for (size_t i = 0; i < layout.linears.size(); ++i) {
    const PackedLinear& l = layout.linears[i];
    entries.push_back({l.name + ".weight", dtype, {l.rows, l.cols}});
    linear_of[entries.back().name] = {i, false};
    if (spec_of(specs, l.name, h5).has_bias) {
      entries.push_back({l.name + ".bias", dtype, {l.rows}});
      linear_of[entries.back().name] = {i, true};
    }
  }
  for (size_t j = 0; j < layout.passthrough.size(); ++j) {
    const auto& t = layout.passthrough[j];
    entries.push_back({t.name, is_float(t.dtype) ? dtype : t.dtype, t.shape});
    passthrough_of[t.name] = j;
  }
  sort_entries(entries);
  const ShardPlan plan = plan_shards(entries, options.max_shard_bytes);

  Timer timer;
  size_t done = 0;
  write_shards(dir.string(), plan,
               [&](const TensorEntry& e) -> std::vector<std::byte> {
                 if (const auto it = passthrough_of.find(e.name); it != passthrough_of.end())
                   return passthrough_bytes(file.read_passthrough(it->second), dtype);
                 const auto [index, is_bias] = linear_of.at(e.name);
                 const PackedLinear l = file.read_linear(index);
                 if (is_bias) {
                   AMLQ_REQUIRE(static_cast<int>(l.bias.size()) == l.rows,
                                "{}: linear '{}' stores no bias, its architecture has one", h5, l.name);
                   return encode_floats(l.bias.data(), l.bias.size(), dtype);
                 }
                 const MatrixF w = dequantize(l, /*include_lowrank=*/true);
                 AMLQ_LOG_INFO("[{}/{}] {} {} r{} -> {}", ++done, layout.linears.size(), l.name, l.spec.label(),
                               l.rank, dtype_name(dtype));
                 return encode_floats(w.data(), static_cast<size_t>(w.size()), dtype);
               },
               {{"format", "pt"}});
  summary.tensors = static_cast<int64_t>(entries.size());
  summary.tensor_bytes = plan.total_bytes;

  ojson cfg = parse_config(layout, h5);
  cfg.erase("quantization_config");
  cfg["torch_dtype"] = torch_dtype_name(dtype);
  write_text(dir / "config.json", cfg.dump(2) + "\n");
  AMLQ_LOG_INFO("dequant: {} tensors, {} bytes in {} shard(s) ({:.1f}s)", entries.size(), plan.total_bytes,
                plan.files.size(), timer.seconds());
}

// ---------------------------------------------------------------- gptq

struct GptqSettings {
  int bits = 4;
  int group_size = 128;
  bool sym = false;
  bool desc_act = false;
  auto operator<=>(const GptqSettings&) const = default;
};

GptqSettings settings_of(const GptqLinear& g) { return {g.bits, g.group_size, g.sym, g.desc_act}; }

std::string regex_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::strchr(".^$|()[]{}*+?\\", c)) out += '\\';
    out += c;
  }
  return out;
}

ojson settings_json(const GptqSettings& s) {
  return ojson{{"bits", s.bits}, {"group_size", s.group_size}, {"desc_act", s.desc_act}, {"sym", s.sym}};
}

// vLLM runs q/k/v and gate/up as one fused layer each and requires one
// configuration per fused layer; its dynamic rules are matched against the
// fused name.
struct FusedGroup {
  const char* fused;
  std::vector<const char*> members;
};
const std::vector<FusedGroup> kFusedGroups = {
    {"self_attn.qkv_proj", {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}},
    {"mlp.gate_up_proj", {"mlp.gate_proj", "mlp.up_proj"}},
};

// Per-module overrides in GPTQModel's `dynamic` form, one rule per fused group
// whose members agree (matching the members' and the fused name), one per
// module otherwise. Appends a warning listing fused groups vLLM cannot load.
ojson dynamic_rules(const std::vector<std::string>& names, const std::vector<GptqSettings>& settings,
                    const GptqSettings& base, std::vector<std::string>& warnings) {
  ojson rules = ojson::object();
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < names.size(); ++i) index[names[i]] = i;
  std::set<size_t> handled;
  std::vector<std::string> split_groups;
  for (size_t i = 0; i < names.size(); ++i) {
    if (handled.count(i)) continue;
    const std::string& name = names[i];
    for (const auto& group : kFusedGroups) {
      const std::string first = std::string(".") + group.members[0];
      if (!name.ends_with(first)) continue;
      const std::string prefix = name.substr(0, name.size() - first.size() + 1);
      std::vector<size_t> members;
      for (const char* m : group.members)
        if (const auto it = index.find(prefix + m); it != index.end()) members.push_back(it->second);
      if (members.size() != group.members.size()) break;
      if (std::any_of(members.begin(), members.end(), [&](size_t m) { return handled.count(m) > 0; })) break;
      bool same = true;
      for (size_t m : members) same = same && settings[m] == settings[members[0]];
      if (same) {
        for (size_t m : members) handled.insert(m);
        if (settings[members[0]] != base) {
          std::string alternatives;
          for (const char* m : group.members) alternatives += regex_escape(m) + "|";
          alternatives += regex_escape(group.fused);
          rules["+:^" + regex_escape(prefix) + "(" + alternatives + ")$"] = settings_json(settings[members[0]]);
        }
      } else {
        split_groups.push_back(prefix + group.fused);
      }
      break;
    }
    if (handled.count(i)) continue;
    handled.insert(i);
    if (settings[i] != base) rules["+:^" + regex_escape(name) + "$"] = settings_json(settings[i]);
  }
  if (!split_groups.empty())
    warnings.push_back(fmt::format(
        "{} fused layer(s) mix configurations ({}{}); GPTQModel and transformers load them, vLLM needs one "
        "configuration per fused layer",
        split_groups.size(), split_groups.front(), split_groups.size() > 1 ? ", ..." : ""));
  return rules;
}

// The configuration a layer the GPTQ format cannot express is re-run at, with
// the layer's rank: for a zero point, the same bits and groups made symmetric
// (zero points 2^(b-1), never 0); otherwise the candidate of the measurement
// table nearest in bpw (then lower eps) with one part and a supported width.
Candidate nearest_expressible(const PackedLinear& layer, GptqProblem problem, const LayerMeasurement* row) {
  Candidate c;
  c.rank = layer.rank;
  if (problem == GptqProblem::ZeroPoint) {
    c.spec = layer.spec;
    c.spec.symmetric = true;
    c.bpw = bits_per_weight(c.spec, layer.rows, layer.cols, c.rank, layer.factor_format);
    return c;
  }
  const Candidate* best = nullptr;
  auto key = [&](const Candidate& x) { return std::make_pair(std::abs(x.bpw - layer.bpw), x.eps); };
  if (row)
    for (const auto& cand : row->candidates)
      if (cand.spec.parts.size() == 1 && gptq::supported_bits(cand.spec.parts[0].bits) &&
          (!best || key(cand) < key(*best)))
        best = &cand;
  if (best) return *best;
  // No table row: one part with the bit width nearest to the layer's average
  // (ties go up) and the group size of its widest part.
  double mean_bits = 0;
  const PackedPart* widest = &layer.parts.at(0);
  for (const auto& p : layer.parts) {
    mean_bits += static_cast<double>(p.bits) * (p.col_end - p.col_begin) / layer.cols;
    if (p.col_end - p.col_begin > widest->col_end - widest->col_begin) widest = &p;
  }
  int bits = gptq::kSupportedBits[0];
  for (int b : gptq::kSupportedBits)
    if (std::abs(b - mean_bits) <= std::abs(bits - mean_bits)) bits = b;
  size_t widest_index = static_cast<size_t>(widest - layer.parts.data());
  const int group = layer.spec.parts.size() == layer.parts.size() ? layer.spec.parts[widest_index].group : widest->group;
  c.spec = layer.spec;
  c.spec.parts = {QuantPart{bits, group, 1.0}};
  c.bpw = bits_per_weight(c.spec, layer.rows, layer.cols, c.rank, layer.factor_format);
  return c;
}

// One line: the layers grouped by reason, at most a few names per reason.
void fail_inexpressible(const std::string& h5, const std::vector<std::pair<std::string, std::string>>& problems) {
  std::vector<std::pair<std::string, std::vector<std::string>>> by_reason;
  for (const auto& problem : problems) {
    // Not a structured binding: clang 14 (the fuzz build) cannot capture one in a lambda.
    const std::string& reason = problem.second;
    auto it = std::find_if(by_reason.begin(), by_reason.end(), [&](const auto& r) { return r.first == reason; });
    if (it == by_reason.end()) it = by_reason.insert(by_reason.end(), {reason, {}});
    it->second.push_back(problem.first);
  }
  std::string list;
  for (const auto& [reason, names] : by_reason) {
    const size_t shown = std::min<size_t>(names.size(), 4);
    std::string who;
    for (size_t i = 0; i < shown; ++i) who += (i ? ", " : "") + names[i];
    if (names.size() > shown) who += fmt::format(" and {} more", names.size() - shown);
    list += fmt::format("{}{}: {}", list.empty() ? "" : "; ", who, reason);
  }
  AMLQ_FAIL(Input,
            "{}: {} layer(s) cannot be written in the GPTQ format (pass --requantize to re-run them at the nearest "
            "expressible configuration): {}",
            h5, problems.size(), list);
}

void export_gptq(Backend& backend, const QuantizedModelFile& file, const ExportOptions& options, const fs::path& dir,
                 ExportSummary& summary) {
  const QuantizedModel& layout = file.layout();
  const std::string& h5 = file.path();
  const size_t n = layout.linears.size();
  const DType bias_dtype = source_float_dtype(layout);
  const ModelConfig config = parse_model_config(layout.header.config_json, h5 + " (config_json)");
  const auto specs = decoder_linears(config);

  // Pass 1: which layers convert, with which settings (tensors are dropped again).
  std::vector<GptqSettings> settings(n);
  std::vector<std::pair<std::string, std::string>> problems;
  std::vector<RequantizeTarget> targets;
  int shifted = 0;
  for (size_t i = 0; i < n; ++i) {
    const PackedLinear l = file.read_linear(i);
    const GptqConversion c = to_gptq(l);
    if (c.problem == GptqProblem::None) {
      settings[i] = settings_of(c.linear);
      shifted += c.shifted_groups;
      continue;
    }
    problems.emplace_back(l.name, c.reason);
    const LayerMeasurement* row = nullptr;
    for (const auto& m : layout.measurements)
      if (m.name == l.name) row = &m;
    targets.push_back({i, nearest_expressible(l, c.problem, row)});
  }
  if (shifted > 0)
    AMLQ_LOG_INFO("gptq: {} (row, group) zero point(s) of 0 moved to 1 with their codes (same weights)", shifted);
  if (!problems.empty() && !options.requantize) fail_inexpressible(h5, problems);

  std::map<size_t, PackedLinear> replaced;
  if (!targets.empty()) {
    const auto redone = requantize_linears(
        backend, file, targets, {options.model, options.calib},
        [](const PackedLinear& l) { return to_gptq(l).problem == GptqProblem::None; });
    for (size_t t = 0; t < targets.size(); ++t) {
      const size_t i = targets[t].index;
      const GptqConversion c = to_gptq(redone[t]);
      AMLQ_ASSERT(c.problem == GptqProblem::None, "requantized '{}' is still inexpressible: {}", redone[t].name,
                  c.reason);
      settings[i] = settings_of(c.linear);
      const PackedLinear& before = layout.linears[i];
      summary.requantized.push_back({before.name, problems[t].second, before.spec.label(), redone[t].spec.label(),
                                     redone[t].rank, before.eps, redone[t].eps});
      replaced[i] = redone[t];
    }
    // Listed in the log here and per layer in the summary.
    std::string list;
    for (const auto& r : summary.requantized)
      list += fmt::format("{}{} {} -> {} (eps {:.3e} -> {:.3e})", list.empty() ? "" : "; ", r.name, r.from, r.to,
                          r.eps_before, r.eps_after);
    AMLQ_LOG_WARN("export: requantized {} layer(s) the GPTQ format cannot express: {}", summary.requantized.size(),
                  list);
  }
  auto load = [&](size_t i) {
    const auto it = replaced.find(i);
    return it != replaced.end() ? it->second : file.read_linear(i);
  };

  // desc_act only says that g_idx may be out of order, which is harmless for the
  // layers whose g_idx is in order: one flag for the model, not per-layer rules.
  bool act_order = false;
  for (const auto& s : settings) act_order = act_order || s.desc_act;
  for (auto& s : settings) s.desc_act = act_order;

  // Default settings: the most common by parameter count; the rest become dynamic rules.
  std::map<GptqSettings, int64_t> weight;
  std::vector<std::string> names;
  std::vector<std::string> odd;
  for (size_t i = 0; i < n; ++i) {
    const PackedLinear& l = layout.linears[i];
    weight[settings[i]] += int64_t{l.rows} * l.cols;
    names.push_back(l.name);
    if (l.rows % gptq::kWordBits != 0 || l.cols % gptq::kWordBits != 0)
      odd.push_back(fmt::format("{} {}x{}", l.name, l.rows, l.cols));
  }
  GptqSettings base = n ? settings[0] : GptqSettings{};
  for (const auto& [s, w] : weight)
    if (w > weight[base]) base = s;
  const ojson rules = dynamic_rules(names, settings, base, summary.warnings);
  if (!odd.empty())
    summary.warnings.push_back(fmt::format(
        "{} linear(s) have in or out features that are not multiples of 32 (e.g. {}); they are written as packed "
        "streams amlq reads, but most GPTQ kernels (vLLM, exllama, Marlin) refuse such shapes",
        odd.size(), odd.front()));

  // Pass 2: the tensors, one linear at a time.
  enum class Kind { Qweight, Qzeros, Scales, GIdx, Bias };
  std::vector<TensorEntry> entries;
  std::map<std::string, std::pair<size_t, Kind>> linear_of;
  std::map<std::string, size_t> passthrough_of;
  for (size_t i = 0; i < n; ++i) {
    const PackedLinear& l = layout.linears[i];
    const GptqSettings& s = settings[i];
    const int64_t groups = gptq::group_count(l.cols, s.group_size);
    const std::string p = l.name + ".";
    auto add = [&](std::string_view suffix, DType d, std::vector<int64_t> shape, Kind kind) {
      entries.push_back({p + std::string(suffix), d, std::move(shape)});
      linear_of[entries.back().name] = {i, kind};
    };
    add(gptq::kQweight, DType::I32, {gptq::packed_words(l.cols, s.bits), l.rows}, Kind::Qweight);
    add(gptq::kQzeros, DType::I32, {groups, gptq::packed_words(l.rows, s.bits)}, Kind::Qzeros);
    add(gptq::kScales, DType::F16, {groups, l.rows}, Kind::Scales);
    add(gptq::kGroupIndex, DType::I32, {l.cols}, Kind::GIdx);
    if (spec_of(specs, l.name, h5).has_bias) add("bias", bias_dtype, {l.rows}, Kind::Bias);
  }
  for (size_t j = 0; j < layout.passthrough.size(); ++j) {
    const auto& t = layout.passthrough[j];
    entries.push_back({t.name, t.dtype, t.shape});
    passthrough_of[t.name] = j;
  }
  sort_entries(entries);
  const ShardPlan plan = plan_shards(entries, options.max_shard_bytes);
  size_t cached = SIZE_MAX, done = 0;
  GptqLinear current;
  write_shards(dir.string(), plan,
               [&](const TensorEntry& e) -> std::vector<std::byte> {
                 if (const auto it = passthrough_of.find(e.name); it != passthrough_of.end())
                   return file.read_passthrough(it->second).data;
                 const auto [i, kind] = linear_of.at(e.name);
                 if (i != cached) {
                   GptqConversion c = to_gptq(load(i));
                   AMLQ_ASSERT(c.problem == GptqProblem::None, "'{}' became inexpressible: {}", e.name, c.reason);
                   GptqSettings now = settings_of(c.linear);
                   now.desc_act = act_order;
                   AMLQ_ASSERT(now == settings[i], "'{}' changed settings between passes", e.name);
                   current = std::move(c.linear);
                   cached = i;
                   AMLQ_LOG_INFO("[{}/{}] {} {}b g{}{}{}", ++done, n, current.name, current.bits, current.group_size,
                                 current.desc_act ? " act-order" : "", current.sym ? " sym" : "");
                 }
                 switch (kind) {
                   case Kind::Qweight: return raw_bytes(current.qweight);
                   case Kind::Qzeros: return raw_bytes(current.qzeros);
                   case Kind::Scales: return raw_bytes(current.scales);
                   case Kind::GIdx: return raw_bytes(current.g_idx);
                   case Kind::Bias:
                     AMLQ_REQUIRE(static_cast<int>(current.bias.size()) == current.out,
                                  "{}: linear '{}' stores no bias, its architecture has one", h5, current.name);
                     return encode_floats(current.bias.data(), current.bias.size(), bias_dtype);
                 }
                 AMLQ_ASSERT(false, "unreachable");
               },
               {{"format", "pt"}});
  summary.tensors = static_cast<int64_t>(entries.size());
  summary.tensor_bytes = plan.total_bytes;

  double damp = 0.01;
  try {
    damp = read_calibration_record(layout.header.extra_json, h5).damp;
  } catch (const Error&) {
  }
  ojson quant;
  quant["quant_method"] = gptq::kQuantMethod;
  quant["checkpoint_format"] = gptq::kCheckpointFormatV1;
  quant["bits"] = base.bits;
  quant["group_size"] = base.group_size;
  quant["desc_act"] = base.desc_act;
  quant["sym"] = base.sym;
  quant["pack_dtype"] = gptq::kPackDtype;
  quant["lm_head"] = false;
  quant["true_sequential"] = true;
  quant["static_groups"] = false;
  quant["damp_percent"] = damp;
  if (!rules.empty()) quant["dynamic"] = rules;
  quant["meta"] = {{"quantizer", {std::string("amlq:") + AMLQ_VERSION}}, {"amlq_source", h5}};
  ojson cfg = parse_config(layout, h5);
  cfg["quantization_config"] = quant;
  write_text(dir / "config.json", cfg.dump(2) + "\n");
  write_text(dir / std::string(gptq::kQuantizeConfigFile), quant.dump(2) + "\n");

  // The factors, as a LoRA adapter on top of this checkpoint.
  std::vector<PackedLinear> layouts = layout.linears;
  for (const auto& [i, l] : replaced) {
    layouts[i].rank = l.rank;
    layouts[i].factor_format = l.factor_format;
  }
  const std::string base_model = fs::absolute(options.out).lexically_normal().string();
  if (write_lowrank_adapter((dir / std::string(kAdapterDir)).string(), layouts, load, base_model))
    for (const auto& l : layouts) summary.adapter_modules += l.rank > 0 ? 1 : 0;
}

}  // namespace

ExportSummary export_model(Backend& backend, const ExportOptions& options) {
  AMLQ_REQUIRE(!options.input.empty(), "no input file");
  if (options.format == ExportFormat::Gptq && options.dtype)
    AMLQ_FAIL(Usage, "--dtype applies to --format dequant (GPTQ stores fp16 scales and copies other tensors as they are)");
  if (options.dtype && *options.dtype != DType::F32 && *options.dtype != DType::F16 && *options.dtype != DType::BF16)
    AMLQ_FAIL(Usage, "--dtype must be f32, fp16 or bf16");
  Timer timer;
  const QuantizedModelFile file(options.input);
  OutputDirectory out(options.out, options.force);
  ExportSummary summary;
  summary.input = options.input;
  summary.out = out.final_path();
  summary.format = options.format == ExportFormat::Gptq ? "gptq" : "dequant";
  const fs::path dir = out.temp_path();
  if (options.format == ExportFormat::Dequant)
    export_dequant(file, options, dir, summary);
  else
    export_gptq(backend, file, options, dir, summary);
  const std::string source = options.model.empty() ? file.layout().header.source_model : options.model;
  summary.tokenizer_files = copy_tokenizer_files(source, dir, summary.warnings);
  summary.files = list_files(dir);
  out.commit();
  for (const auto& w : summary.warnings) AMLQ_LOG_WARN("export: {}", w);
  AMLQ_LOG_INFO("export: wrote {} ({} files, {:.1f}s)", summary.out, summary.files.size(), timer.seconds());
  return summary;
}

nlohmann::json export_summary_json(const ExportSummary& s) {
  nlohmann::json requantized = nlohmann::json::array();
  for (const auto& r : s.requantized)
    requantized.push_back({{"name", r.name}, {"reason", r.reason}, {"from", r.from}, {"to", r.to}, {"rank", r.rank},
                           {"eps_before", r.eps_before}, {"eps_after", r.eps_after}});
  nlohmann::json j = {{"input", s.input},
                      {"out", s.out},
                      {"format", s.format},
                      {"files", s.files},
                      {"tensors", s.tensors},
                      {"tensor_bytes", s.tensor_bytes},
                      {"tokenizer_files", s.tokenizer_files},
                      {"requantized", requantized},
                      {"warnings", s.warnings}};
  if (!s.dtype.empty()) j["dtype"] = s.dtype;
  if (s.format == "gptq") j["adapter_modules"] = s.adapter_modules;
  return j;
}

std::string export_summary_text(const ExportSummary& s) {
  std::string out;
  append(out, "input        {}\n", s.input);
  append(out, "output       {} ({} format{})\n", s.out, s.format, s.dtype.empty() ? "" : ", " + s.dtype);
  append(out, "tensors      {} ({} bytes) in {} file(s)\n", s.tensors, s.tensor_bytes, s.files.size());
  if (s.format == "gptq")
    append(out, "adapter      {}\n", s.adapter_modules ? fmt::format("{}/ ({} modules)", kAdapterDir, s.adapter_modules)
                                                 : std::string("none (no low-rank factors)"));
  append(out, "tokenizer    {}\n", s.tokenizer_files.empty() ? std::string("-") : fmt::format("{}", fmt::join(s.tokenizer_files, ", ")));
  for (const auto& r : s.requantized)
    append(out, "requantized  {}: {} -> {} r{} (eps {:.3e} -> {:.3e}); was: {}\n", r.name, r.from, r.to, r.rank,
         r.eps_before, r.eps_after, r.reason);
  for (const auto& w : s.warnings) append(out, "warning      {}\n", w);
  return out;
}

}  // namespace amlq
