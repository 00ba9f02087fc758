#include "export/lowrank_adapter.h"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/error.h"
#include "core/fp16.h"
#include "export/safetensors_shards.h"
#include "io/safetensors.h"
#include "quant/pack.h"

namespace amlq {

namespace fs = std::filesystem;

std::string lora_a_name(const std::string& module) { return fmt::format("{}{}.lora_A.weight", kPeftPrefix, module); }
std::string lora_b_name(const std::string& module) { return fmt::format("{}{}.lora_B.weight", kPeftPrefix, module); }

namespace {

std::vector<std::byte> bytes_of(const std::vector<uint16_t>& v) {
  const auto* p = reinterpret_cast<const std::byte*>(v.data());
  return std::vector<std::byte>(p, p + v.size() * sizeof(uint16_t));
}

// The factors as fp16 bits: fp16 factors as stored, int8 ones dequantized and rounded.
void fp16_factors(const PackedLinear& l, std::vector<uint16_t>& a, std::vector<uint16_t>& b) {
  if (l.factor_format == FactorFormat::Fp16) {
    a = l.a_fp16;
    b = l.b_fp16;
    return;
  }
  const LowRankFactors f = unpack_factors(l);
  a.resize(static_cast<size_t>(f.a.size()));
  b.resize(static_cast<size_t>(f.b.size()));
  for (Eigen::Index i = 0; i < f.a.size(); ++i) a[static_cast<size_t>(i)] = float_to_fp16(f.a.data()[i]);
  for (Eigen::Index i = 0; i < f.b.size(); ++i) b[static_cast<size_t>(i)] = float_to_fp16(f.b.data()[i]);
}

void write_json(const std::string& path, const nlohmann::ordered_json& j) {
  std::ofstream f(path, std::ios::trunc);
  f << j.dump(2) << "\n";
  if (!f) AMLQ_FAIL(Output, "{}: write failed", path);
}

}  // namespace

bool write_lowrank_adapter(const std::string& dir, const std::vector<PackedLinear>& layouts,
                           const std::function<PackedLinear(size_t)>& load, const std::string& base_model) {
  std::vector<size_t> adapted;
  int max_rank = 0;
  for (size_t i = 0; i < layouts.size(); ++i)
    if (layouts[i].rank > 0) {
      adapted.push_back(i);
      max_rank = std::max(max_rank, layouts[i].rank);
    }
  if (adapted.empty()) return false;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) AMLQ_FAIL(Output, "{}: cannot create: {}", dir, ec.message());

  nlohmann::ordered_json rank_pattern = nlohmann::ordered_json::object();
  nlohmann::ordered_json alpha_pattern = nlohmann::ordered_json::object();
  std::vector<std::string> targets;
  std::vector<TensorEntry> entries;
  std::map<std::string, size_t> owner;  // tensor name -> linear index
  for (size_t i : adapted) {
    const PackedLinear& l = layouts[i];
    rank_pattern[l.name] = l.rank;
    alpha_pattern[l.name] = l.rank;  // alpha / r = 1
    targets.push_back(l.name);
    entries.push_back({lora_a_name(l.name), DType::F16, {l.rank, l.cols}});
    entries.push_back({lora_b_name(l.name), DType::F16, {l.rows, l.rank}});
    owner[entries[entries.size() - 2].name] = i;
    owner[entries.back().name] = i;
  }
  nlohmann::ordered_json config;
  config["peft_type"] = "LORA";
  config["task_type"] = "CAUSAL_LM";
  config["base_model_name_or_path"] = base_model;
  config["r"] = max_rank;
  config["lora_alpha"] = max_rank;
  config["rank_pattern"] = rank_pattern;
  config["alpha_pattern"] = alpha_pattern;
  config["target_modules"] = targets;
  config["lora_dropout"] = 0.0;
  config["bias"] = "none";
  config["fan_in_fan_out"] = false;
  config["use_rslora"] = false;
  config["use_dora"] = false;
  config["modules_to_save"] = nullptr;
  config["layers_to_transform"] = nullptr;
  config["layers_pattern"] = nullptr;
  config["init_lora_weights"] = true;
  config["inference_mode"] = true;
  config["revision"] = nullptr;
  write_json((fs::path(dir) / kAdapterConfigFile).string(), config);

  // One file (PEFT reads a single adapter_model.safetensors), written a module at a time.
  ShardPlan plan = plan_shards(entries, UINT64_MAX, "adapter_model");
  size_t loaded_index = SIZE_MAX;
  std::vector<uint16_t> a, b;
  write_shards(
      dir, plan,
      [&](const TensorEntry& e) {
        const size_t i = owner.at(e.name);
        if (i != loaded_index) {
          const PackedLinear l = load(i);
          AMLQ_ASSERT(l.rank == layouts[i].rank, "linear '{}' has rank {}, its layout {}", l.name, l.rank,
                      layouts[i].rank);
          fp16_factors(l, a, b);
          loaded_index = i;
        }
        return bytes_of(e.name.ends_with(".lora_A.weight") ? b : a);
      },
      {{"format", "pt"}}, "adapter_model");
  return true;
}

namespace {

// PEFT's lookup of a per-module value: the first pattern key k for which the
// module name matches (.*\.)?(k)$.
const nlohmann::json* pattern_value(const nlohmann::json& patterns, const std::string& module) {
  if (!patterns.is_object()) return nullptr;
  for (auto it = patterns.begin(); it != patterns.end(); ++it) {
    try {
      if (std::regex_match(module, std::regex("(.*\\.)?(" + it.key() + ")"))) return &it.value();
    } catch (const std::regex_error&) {
      if (module == it.key()) return &it.value();
    }
  }
  return nullptr;
}

}  // namespace

LowRankAdapter read_lowrank_adapter(const std::string& dir, const std::map<std::string, std::pair<int, int>>& shapes) {
  const std::string config_path = (fs::path(dir) / kAdapterConfigFile).string();
  const std::string weights_path = (fs::path(dir) / kAdapterWeightsFile).string();
  std::ifstream in(config_path);
  if (!in) AMLQ_FAIL(Input, "{}: cannot open", config_path);
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    AMLQ_FAIL(Input, "{}: not valid JSON: {}", config_path, e.what());
  }
  auto text = [&](const char* key, const char* fallback) {
    return config.contains(key) && config[key].is_string() ? config[key].get<std::string>() : std::string(fallback);
  };
  AMLQ_REQUIRE(text("peft_type", "") == "LORA", "{}: peft_type is '{}', amlq reads LORA adapters", config_path,
               text("peft_type", ""));
  AMLQ_REQUIRE(!config.value("use_dora", false), "{}: DoRA adapters are not supported", config_path);
  AMLQ_REQUIRE(text("bias", "none") == "none", "{}: LoRA bias terms (bias = '{}') are not supported", config_path,
               text("bias", ""));
  AMLQ_REQUIRE(config.contains("r") && config["r"].is_number_integer(), "{}: 'r' is missing", config_path);
  const int default_r = config["r"].get<int>();
  const double default_alpha = config.contains("lora_alpha") ? config["lora_alpha"].get<double>() : default_r;
  const bool rslora = config.value("use_rslora", false);
  const nlohmann::json rank_pattern = config.value("rank_pattern", nlohmann::json::object());
  const nlohmann::json alpha_pattern = config.value("alpha_pattern", nlohmann::json::object());

  const auto file = SafetensorsFile::open(weights_path);
  LowRankAdapter adapter;
  std::map<std::string, std::pair<const TensorInfo*, const TensorInfo*>> found;  // module -> (lora_A, lora_B)
  const std::regex key_re(R"(base_model\.model\.(.+)\.lora_([AB])(\.default)?\.weight)");
  for (const auto& [name, info] : file->tensors()) {
    std::smatch m;
    AMLQ_REQUIRE(std::regex_match(name, m, key_re), "{}: tensor '{}' is not a LoRA factor (base_model.model.<module>.lora_A/B.weight)",
                 weights_path, name);
    auto& slot = found[m[1].str()];
    (m[2].str() == "A" ? slot.first : slot.second) = &info;
  }
  for (const auto& [module, pair] : found) {
    const auto shape_it = shapes.find(module);
    AMLQ_REQUIRE(shape_it != shapes.end(), "{}: module '{}' is not a quantized linear of this model", weights_path,
                 module);
    AMLQ_REQUIRE(pair.first && pair.second, "{}: module '{}' lacks its lora_{} tensor", weights_path, module,
                 pair.first ? "B" : "A");
    const auto [out, in_features] = shape_it->second;
    const TensorInfo& ta = *pair.first;   // lora_A = B, [r, in]
    const TensorInfo& tb = *pair.second;  // lora_B = A, [out, r]
    AMLQ_REQUIRE(ta.shape.size() == 2 && tb.shape.size() == 2 && ta.shape[1] == in_features && tb.shape[0] == out &&
                     ta.shape[0] == tb.shape[1] && ta.shape[0] > 0,
                 "{}: module '{}': lora_A [{}] and lora_B [{}] do not fit a [{} x {}] layer", weights_path, module,
                 fmt::join(ta.shape, ", "), fmt::join(tb.shape, ", "), out, in_features);
    const int rank = static_cast<int>(ta.shape[0]);
    const nlohmann::json* r_value = pattern_value(rank_pattern, module);
    const int r = r_value ? r_value->get<int>() : default_r;
    AMLQ_REQUIRE(r == rank, "{}: module '{}' has rank {} tensors, its configured rank (r / rank_pattern) is {}",
                 weights_path, module, rank, r);
    const nlohmann::json* alpha_value = pattern_value(alpha_pattern, module);
    const double alpha = alpha_value ? alpha_value->get<double>() : default_alpha;
    const double scale = rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / r;

    AdapterFactors f;
    f.rank = rank;
    bool exact = true;
    auto convert = [&](const TensorInfo& t, const std::string& tensor, double factor, std::vector<uint16_t>& dst) {
      if (t.dtype != DType::F16 && t.dtype != DType::F32 && t.dtype != DType::BF16)
        AMLQ_FAIL(Input, "{}: tensor '{}' is {}, expected F16, BF16 or F32", weights_path, tensor, dtype_name(t.dtype));
      const TensorF32 v = file->read_f32(tensor);
      dst.resize(v.data.size());
      for (size_t i = 0; i < v.data.size(); ++i) {
        const float x = static_cast<float>(static_cast<double>(v.data[i]) * factor);
        dst[i] = float_to_fp16(x);
        if (fp16_to_float(dst[i]) != x) exact = false;
      }
    };
    convert(ta, ta.name, 1.0, f.b_fp16);
    convert(tb, tb.name, scale, f.a_fp16);
    if (!exact) ++adapter.inexact_modules;
    adapter.modules[module] = std::move(f);
  }
  return adapter;
}

}  // namespace amlq
