#include "export/gptq_reader.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <regex>

#include "core/error.h"
#include "core/format.h"
#include "core/fp16.h"
#include "core/log.h"
#include "export/gptq_format.h"
#include "export/gptq_linear.h"
#include "export/lowrank_adapter.h"
#include "io/safetensors.h"
#include "quant/cost_model.h"

namespace amlq {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

template <typename... Args>
void append(std::string& out, fmt::format_string<Args...> format, Args&&... args) {
  fmt::format_to(std::back_inserter(out), format, std::forward<Args>(args)...);
}


json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) AMLQ_FAIL(Input, "{}: cannot open", path.string());
  try {
    return json::parse(in);
  } catch (const std::exception& e) {
    AMLQ_FAIL(Input, "{}: not valid JSON: {}", path.string(), e.what());
  }
}

// The quantization settings and the file they came from; null when the directory has none.
std::pair<json, std::string> quantization_section(const std::string& dir) {
  const fs::path config = fs::path(dir) / "config.json";
  std::error_code ec;
  if (fs::is_regular_file(config, ec)) {
    json j = read_json(config);
    if (j.is_object() && j.contains("quantization_config") && j["quantization_config"].is_object())
      return {j["quantization_config"], config.string()};
  }
  for (const char* name : {"quantize_config.json", "quant_config.json"}) {
    const fs::path p = fs::path(dir) / name;
    if (fs::is_regular_file(p, ec)) return {read_json(p), p.string()};
  }
  return {json(), ""};
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

template <typename T>
T field(const json& j, const char* key, T fallback, const std::string& origin) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  try {
    return j[key].get<T>();
  } catch (const json::exception&) {
    AMLQ_FAIL(Input, "{}: '{}' has the wrong type ({})", origin, key, j[key].dump());
  }
}

}  // namespace

CheckpointKind checkpoint_kind(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return CheckpointKind::Plain;
  const auto [section, origin] = quantization_section(dir);
  if (section.is_null()) return CheckpointKind::Plain;
  const std::string method = lower(field<std::string>(section, "quant_method", "gptq", origin));
  if (method == gptq::kQuantMethod) return CheckpointKind::Gptq;
  AMLQ_FAIL(Input, "{}: quantization method '{}' is not supported (amlq reads GPTQ checkpoints and plain ones)", origin,
            method);
}

GptqModuleConfig GptqCheckpointConfig::module(const std::string& name) const {
  GptqModuleConfig c = base;
  for (const auto& [pattern, overrides] : dynamic) {
    const bool negative = pattern.starts_with(gptq::kNegativeRule);
    std::string raw = pattern;
    if (pattern.starts_with(gptq::kNegativeRule) || pattern.starts_with(gptq::kPositiveRule)) raw = pattern.substr(2);
    bool matches = false;
    try {
      matches = std::regex_search(name, std::regex(raw), std::regex_constants::match_continuous);
    } catch (const std::regex_error& e) {
      AMLQ_FAIL(Input, "{}: dynamic rule '{}' is not a regular expression amlq can read: {}", origin, pattern, e.what());
    }
    if (!matches) continue;
    if (negative) {
      c.quantized = false;
      return c;
    }
    c.bits = field<int>(overrides, "bits", c.bits, origin);
    c.group_size = field<int>(overrides, "group_size", c.group_size, origin);
    c.sym = field<bool>(overrides, "sym", c.sym, origin);
    c.desc_act = field<bool>(overrides, "desc_act", c.desc_act, origin);
    return c;
  }
  return c;
}

GptqCheckpointConfig read_gptq_config(const std::string& dir) {
  const auto [q, origin] = quantization_section(dir);
  if (q.is_null()) AMLQ_FAIL(Input, "{}: no quantization_config in config.json and no quantize_config.json", dir);
  GptqCheckpointConfig c;
  c.origin = origin;
  const std::string method = lower(field<std::string>(q, "quant_method", "gptq", origin));
  AMLQ_REQUIRE(method == gptq::kQuantMethod, "{}: quant_method '{}' is not gptq", origin, method);
  AMLQ_REQUIRE(!field<bool>(q, "is_marlin_format", false, origin), "{}: Marlin-repacked checkpoints are not supported",
               origin);
  // GPTQModel writes the layout as "checkpoint_format" or, in newer versions, "format".
  const std::string format_key = q.contains("checkpoint_format") ? "checkpoint_format" : "format";
  c.checkpoint_format =
      lower(field<std::string>(q, format_key.c_str(), std::string(gptq::kCheckpointFormatV1), origin));
  if (c.checkpoint_format == gptq::kCheckpointFormatV1)
    c.zero_offset = gptq::kZeroOffsetV1;
  else if (c.checkpoint_format == gptq::kCheckpointFormatV2)
    c.zero_offset = gptq::kZeroOffsetV2;
  else
    AMLQ_FAIL(Input, "{}: checkpoint_format '{}' is not supported (gptq, gptq_v2)", origin, c.checkpoint_format);
  const std::string pack_dtype = lower(field<std::string>(q, "pack_dtype", std::string(gptq::kPackDtype), origin));
  AMLQ_REQUIRE(pack_dtype == gptq::kPackDtype, "{}: pack_dtype '{}' is not supported (int32)", origin, pack_dtype);
  AMLQ_REQUIRE(q.contains("bits"), "{}: 'bits' is missing", origin);
  c.base.bits = field<int>(q, "bits", 4, origin);
  c.base.group_size = field<int>(q, "group_size", 128, origin);
  c.base.sym = field<bool>(q, "sym", true, origin);
  c.base.desc_act = field<bool>(q, "desc_act", false, origin);
  AMLQ_REQUIRE(!field<bool>(q, "lm_head", false, origin), "{}: a quantized lm_head is not supported", origin);
  if (q.contains("dynamic") && q["dynamic"].is_object())
    for (auto it = q["dynamic"].begin(); it != q["dynamic"].end(); ++it) c.dynamic.emplace_back(it.key(), it.value());
  return c;
}

namespace {

struct LinearSource {
  std::string name;  // "model.layers.0.self_attn.q_proj"
  LinearSpec spec;
  GptqModuleConfig config;
  bool quantized = false;  // has <name>.qweight
};

std::vector<uint32_t> words_of(const Checkpoint& ckpt, const std::string& tensor, std::vector<int64_t> shape) {
  const auto& info = ckpt.info(tensor);
  AMLQ_REQUIRE(info.dtype == DType::I32, "{}: tensor '{}' is {}, expected I32", ckpt.file_of(tensor), tensor,
               dtype_name(info.dtype));
  AMLQ_REQUIRE(info.shape == shape, "{}: tensor '{}' has shape [{}], expected [{}] for this layer's bits",
               ckpt.file_of(tensor), tensor, fmt::join(info.shape, ", "), fmt::join(shape, ", "));
  const auto raw = ckpt.raw(tensor);
  std::vector<uint32_t> out(raw.size() / 4);
  std::memcpy(out.data(), raw.data(), raw.size());
  return out;
}

std::vector<float> floats_of(const Checkpoint& ckpt, const std::string& tensor, std::vector<int64_t> shape) {
  AMLQ_REQUIRE(ckpt.has(tensor), "{}: tensor '{}' is missing", ckpt.path(), tensor);
  AMLQ_REQUIRE(ckpt.info(tensor).shape == shape, "{}: tensor '{}' has shape [{}], expected [{}]", ckpt.file_of(tensor),
               tensor, fmt::join(ckpt.info(tensor).shape, ", "), fmt::join(shape, ", "));
  return ckpt.read_f32(tensor).data;
}

GptqLinear read_gptq_linear(const Checkpoint& ckpt, const LinearSource& src) {
  GptqLinear g;
  g.name = src.name;
  g.in = src.spec.cols;
  g.out = src.spec.rows;
  g.bits = src.config.bits;
  g.group_size = src.config.group_size;
  g.sym = src.config.sym;
  g.desc_act = src.config.desc_act;
  AMLQ_REQUIRE(gptq::supported_bits(g.bits), "{}: module '{}' is configured with {} bits (the GPTQ format has 2, 3, 4, 8)",
               ckpt.path(), src.name, g.bits);
  AMLQ_REQUIRE(g.group_size == gptq::kWholeRowGroup || g.group_size > 0, "{}: module '{}' has group_size {}",
               ckpt.path(), src.name, g.group_size);
  const int64_t groups = g.groups();
  const std::string base = src.name + ".";
  g.qweight = words_of(ckpt, base + std::string(gptq::kQweight), {gptq::packed_words(g.in, g.bits), g.out});
  const std::string zeros = base + std::string(gptq::kQzeros);
  AMLQ_REQUIRE(ckpt.has(zeros), "{}: tensor '{}' is missing", ckpt.path(), zeros);
  g.qzeros = words_of(ckpt, zeros, {groups, gptq::packed_words(g.out, g.bits)});
  const std::string scales = base + std::string(gptq::kScales);
  AMLQ_REQUIRE(ckpt.has(scales), "{}: tensor '{}' is missing", ckpt.path(), scales);
  const auto& si = ckpt.info(scales);
  AMLQ_REQUIRE(si.dtype == DType::F16, "{}: tensor '{}' is {}; amlq's format holds fp16 scales", ckpt.file_of(scales),
               scales, dtype_name(si.dtype));
  AMLQ_REQUIRE(si.shape == (std::vector<int64_t>{groups, g.out}), "{}: tensor '{}' has shape [{}], expected [{}, {}]",
               ckpt.file_of(scales), scales, fmt::join(si.shape, ", "), groups, g.out);
  const auto raw = ckpt.raw(scales);
  g.scales.resize(raw.size() / 2);
  std::memcpy(g.scales.data(), raw.data(), raw.size());
  const std::string g_idx = base + std::string(gptq::kGroupIndex);
  if (ckpt.has(g_idx)) {
    const auto& gi = ckpt.info(g_idx);
    AMLQ_REQUIRE(gi.dtype == DType::I32 && gi.shape == std::vector<int64_t>{g.in},
                 "{}: tensor '{}' is {} [{}], expected I32 [{}]", ckpt.file_of(g_idx), g_idx, dtype_name(gi.dtype),
                 fmt::join(gi.shape, ", "), g.in);
    const auto r = ckpt.raw(g_idx);
    g.g_idx.resize(static_cast<size_t>(g.in));
    std::memcpy(g.g_idx.data(), r.data(), r.size());
  } else {
    const int G = g.group_size == gptq::kWholeRowGroup ? g.in : g.group_size;
    g.g_idx.resize(static_cast<size_t>(g.in));
    for (int i = 0; i < g.in; ++i) g.g_idx[static_cast<size_t>(i)] = i / G;
  }
  const std::string bias = base + "bias";
  if (ckpt.has(bias)) g.bias = floats_of(ckpt, bias, {g.out});
  return g;
}

std::vector<LinearSource> linear_sources(const Checkpoint& ckpt, const ModelConfig& config,
                                         const GptqCheckpointConfig& qc) {
  std::vector<LinearSource> out;
  const auto specs = decoder_linears(config);
  for (int layer = 0; layer < config.num_layers; ++layer)
    for (const auto& spec : specs) {
      LinearSource s;
      s.name = layer_tensor_name(layer, spec.name);
      s.spec = spec;
      s.config = qc.module(s.name);
      s.quantized = ckpt.has(s.name + "." + std::string(gptq::kQweight));
      if (s.quantized && !s.config.quantized)
        AMLQ_FAIL(Input, "{}: '{}' has a qweight but a dynamic rule in {} leaves it unquantized", ckpt.path(), s.name,
                  qc.origin);
      if (!s.quantized)
        AMLQ_REQUIRE(ckpt.has(s.name + ".weight"), "{}: linear '{}' has neither '{}.qweight' nor '{}.weight'",
                     ckpt.path(), s.name, s.name, s.name);
      out.push_back(std::move(s));
    }
  AMLQ_REQUIRE(!ckpt.has("lm_head.qweight"), "{}: a quantized lm_head is not supported", ckpt.path());
  return out;
}

std::string adapter_dir(const std::string& dir) { return (fs::path(dir) / kAdapterDir).string(); }

bool has_adapter(const std::string& dir) {
  std::error_code ec;
  return fs::is_regular_file(fs::path(adapter_dir(dir)) / kAdapterConfigFile, ec);
}

}  // namespace

ModelWeights load_gptq_model_weights(const std::string& dir, int* adapter_modules) {
  const GptqCheckpointConfig qc = read_gptq_config(dir);
  ModelWeights w;
  w.config = load_model_config(dir);
  const ModelConfig& c = w.config;
  const Checkpoint ckpt = Checkpoint::open(dir);
  auto matrix = [&](const std::string& name, int rows, int cols) {
    const auto v = floats_of(ckpt, name, {rows, cols});
    return MatrixF(Eigen::Map<const MatrixF>(v.data(), rows, cols));
  };
  auto vector = [&](const std::string& name, int n) {
    const auto v = floats_of(ckpt, name, {n});
    return VectorF(Eigen::Map<const VectorF>(v.data(), n));
  };
  w.embedding = matrix("model.embed_tokens.weight", c.vocab_size, c.hidden_size);
  w.final_norm = vector("model.norm.weight", c.hidden_size);
  if (!c.tie_word_embeddings) w.lm_head = matrix("lm_head.weight", c.vocab_size, c.hidden_size);
  w.has_head = true;
  w.first_layer = 0;

  std::map<std::string, std::pair<int, int>> shapes;
  const auto sources = linear_sources(ckpt, c, qc);
  for (const auto& s : sources) shapes[s.name] = {s.spec.rows, s.spec.cols};
  LowRankAdapter adapter;
  if (has_adapter(dir)) {
    adapter = read_lowrank_adapter(adapter_dir(dir), shapes);
    if (adapter.inexact_modules > 0)
      AMLQ_LOG_WARN("{}: the factors of {} adapter module(s) are not fp16 values with scale 1; rounded to fp16",
                    adapter_dir(dir), adapter.inexact_modules);
  }
  if (adapter_modules) *adapter_modules = static_cast<int>(adapter.modules.size());

  size_t next = 0;
  for (int layer = 0; layer < c.num_layers; ++layer) {
    DecoderLayerWeights d;
    d.input_norm = vector(layer_tensor_name(layer, "input_layernorm.weight"), c.hidden_size);
    d.post_attention_norm = vector(layer_tensor_name(layer, "post_attention_layernorm.weight"), c.hidden_size);
    for (size_t j = 0; j < decoder_linears(c).size(); ++j) {
      const LinearSource& s = sources[next++];
      const auto it = adapter.modules.find(s.name);
      LinearWeights lw;
      if (s.quantized) {
        PackedLinear p = from_gptq(read_gptq_linear(ckpt, s), qc.zero_offset, dir);
        if (it != adapter.modules.end()) {
          p.rank = it->second.rank;
          p.factor_format = FactorFormat::Fp16;
          p.a_fp16 = it->second.a_fp16;
          p.b_fp16 = it->second.b_fp16;
          p.bpw = bits_per_weight(p.spec, p.rows, p.cols, p.rank, p.factor_format);
        }
        lw.packed = std::make_shared<const PackedLinear>(std::move(p));
      } else {
        lw.dense = matrix(s.name + ".weight", s.spec.rows, s.spec.cols);
        if (ckpt.has(s.name + ".bias")) lw.bias = vector(s.name + ".bias", s.spec.rows);
        if (it != adapter.modules.end()) {
          const int r = it->second.rank;
          MatrixF a(s.spec.rows, r), b(r, s.spec.cols);
          for (Eigen::Index i = 0; i < a.size(); ++i) a.data()[i] = fp16_to_float(it->second.a_fp16[static_cast<size_t>(i)]);
          for (Eigen::Index i = 0; i < b.size(); ++i) b.data()[i] = fp16_to_float(it->second.b_fp16[static_cast<size_t>(i)]);
          lw.dense.noalias() += a * b;
        }
      }
      d.linears.push_back(std::move(lw));
    }
    w.layers.push_back(std::move(d));
  }
  return w;
}

std::string summarize_gptq_checkpoint(const std::string& dir) {
  const GptqCheckpointConfig qc = read_gptq_config(dir);
  const ModelConfig c = load_model_config(dir);
  const Checkpoint ckpt = Checkpoint::open(dir);
  const auto sources = linear_sources(ckpt, c, qc);
  std::map<std::string, int> ranks;
  if (has_adapter(dir)) {
    const auto file = SafetensorsFile::open((fs::path(adapter_dir(dir)) / kAdapterWeightsFile).string());
    for (const auto& [name, info] : file->tensors())
      if (name.ends_with(".lora_A.weight") && name.starts_with(kPeftPrefix) && info.shape.size() == 2)
        ranks[name.substr(kPeftPrefix.size(), name.size() - kPeftPrefix.size() - std::string(".lora_A.weight").size())] =
            static_cast<int>(info.shape[0]);
  }
  std::string out;
  append(out, "model        {} (GPTQ checkpoint, format {}, settings from {})\n", dir, qc.checkpoint_format, qc.origin);
  append(out, "architecture {} ({} layers, hidden {}, intermediate {}, vocab {})\n", arch_name(c.arch), c.num_layers,
       c.hidden_size, c.intermediate_size, c.vocab_size);
  append(out, "default      bits {}, group_size {}, desc_act {}, sym {}; {} dynamic rule(s)\n", qc.base.bits,
       qc.base.group_size, qc.base.desc_act, qc.base.sym, qc.dynamic.size());
  append(out, "adapter      {}\n", ranks.empty() ? std::string("none")
                                           : fmt::format("{} ({} modules)", adapter_dir(dir), ranks.size()));
  out += "\n";
  size_t width = 6;
  for (const auto& s : sources) width = std::max(width, s.name.size());
  append(out, "{:<{}}  {:>12}  {:>4} {:>6} {:>9} {:>4} {:>5} {:>7}\n", "linear", width, "shape", "bits", "group", "act-order",
       "sym", "rank", "bpw");
  int64_t params = 0;
  double weighted = 0;
  for (const auto& s : sources) {
    const int rows = s.spec.rows, cols = s.spec.cols;
    const auto r = ranks.find(s.name);
    const int rank = r == ranks.end() ? 0 : r->second;
    if (!s.quantized) {
      append(out, "{:<{}}  {:>12}  {:>4} {:>6} {:>9} {:>4} {:>5} {:>7}\n", s.name, width, fmt::format("{}x{}", rows, cols),
           "-", "-", "-", "-", rank, "dense");
      continue;
    }
    // g_idx tells act order; read it (small) rather than the codes.
    bool act_order = false;
    const std::string g_idx = s.name + "." + std::string(gptq::kGroupIndex);
    const int G = s.config.group_size == gptq::kWholeRowGroup ? cols : std::min(s.config.group_size, cols);
    if (ckpt.has(g_idx) && ckpt.info(g_idx).dtype == DType::I32 && ckpt.info(g_idx).numel() == cols) {
      const auto raw = ckpt.raw(g_idx);
      std::vector<int32_t> v(static_cast<size_t>(cols));
      std::memcpy(v.data(), raw.data(), raw.size());
      for (int i = 0; i < cols; ++i) act_order = act_order || v[static_cast<size_t>(i)] != i / G;
    }
    QuantSpec spec;
    spec.parts = {QuantPart{s.config.bits, s.config.group_size == gptq::kWholeRowGroup ? 0 : G, 1.0}};
    const double bpw = bits_per_weight(spec, rows, cols, rank, FactorFormat::Fp16);
    params += int64_t{rows} * cols;
    weighted += bpw * static_cast<double>(int64_t{rows} * cols);
    append(out, "{:<{}}  {:>12}  {:>4} {:>6} {:>9} {:>4} {:>5} {:>7.4f}\n", s.name, width, fmt::format("{}x{}", rows, cols),
         s.config.bits, s.config.group_size, act_order ? "yes" : "no", s.config.sym ? "yes" : "no", rank, bpw);
  }
  out += "\n";
  append(out, "totals       {} quantized parameters, average {:.4f} bpw (amlq's cost model, adapter included)\n",
       with_commas(params), params ? weighted / static_cast<double>(params) : 0.0);
  return out;
}

}  // namespace amlq
