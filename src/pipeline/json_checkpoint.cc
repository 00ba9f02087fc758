#include "pipeline/json_checkpoint.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/hash.h"
#include "io/json_value.h"

namespace amlq {

nlohmann::json table_to_json(const MeasurementTable& table) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& layer : table) {
    nlohmann::json candidates = nlohmann::json::array();
    for (const auto& c : layer.candidates) {
      // The standard error only when rows were sampled, so full-row tables keep their form.
      if (c.eps_stderr > 0) {
        candidates.push_back({c.spec.label(), c.rank, c.bpw, c.eps, c.eps_stderr});
      } else {
        candidates.push_back({c.spec.label(), c.rank, c.bpw, c.eps});
      }
    }
    nlohmann::json row = {{"name", layer.name}, {"rows", layer.rows}, {"cols", layer.cols}, {"candidates", candidates}};
    // Sensitivities only once measured, so that measure checkpoints keep their form.
    if (layer.alpha != 0) {
      row["alpha"] = layer.alpha;
      row["alpha_linearity"] = layer.alpha_linearity;
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

MeasurementTable table_from_json(const nlohmann::json& j, const std::string& origin) {
  // Checkpoints are outside input (a damaged work dir, a file from another run):
  // every field is read with its JSON type and range checked (io/json_value.h),
  // so a defect is one Input error naming the file, never a nlohmann exception.
  if (!j.is_array())
    AMLQ_FAIL(Input, "{}: malformed measurement table: expected an array of layers, found {}", origin, j.type_name());
  MeasurementTable table;
  for (const auto& row : j) {
    LayerMeasurement layer;
    layer.name = json_field<std::string>(row, "name", origin);
    const std::string where = fmt::format("{} (layer '{}')", origin, layer.name);
    layer.rows = json_field<int>(row, "rows", where);
    layer.cols = json_field<int>(row, "cols", where);
    if (row.is_object() && row.contains("alpha")) {
      layer.alpha = json_field<double>(row, "alpha", where);
      layer.alpha_linearity = json_field<double>(row, "alpha_linearity", where);
      if (!std::isfinite(layer.alpha) || layer.alpha < 0)
        AMLQ_FAIL(Input, "{}: alpha = {} is not a finite number >= 0", where, layer.alpha);
    }
    const auto& candidates = json_member(row, "candidates", where);
    if (!candidates.is_array()) AMLQ_FAIL(Input, "{}: 'candidates' is not an array", where);
    for (const auto& c : candidates) {
      if (!c.is_array() || c.size() < 4 || c.size() > 5)
        AMLQ_FAIL(Input, "{}: candidate {} is not [spec, rank, bpw, eps(, stderr)]", where, c.dump().substr(0, 200));
      Candidate cand;
      const auto label = json_value_as<std::string>(c[0], "spec", where);
      try {
        cand.spec = QuantSpec::parse(label);
      } catch (const Error& e) {
        AMLQ_FAIL(Input, "{}: {}", where, e.what());
      }
      cand.rank = json_value_as<int>(c[1], "rank", where);
      cand.bpw = json_value_as<double>(c[2], "bpw", where);
      cand.eps = json_value_as<double>(c[3], "eps", where);
      if (c.size() > 4) cand.eps_stderr = json_value_as<double>(c[4], "eps_stderr", where);
      layer.candidates.push_back(cand);
    }
    table.push_back(std::move(layer));
  }
  return table;
}

nlohmann::json plan_to_json(const SearchResult& plan) {
  return {{"method", plan.method},       {"target_bpw", plan.target_bpw}, {"achieved_bpw", plan.achieved_bpw},
          {"max_eps", plan.max_eps},     {"sum_eps", plan.sum_eps},       {"threshold", plan.threshold},
          {"choice", plan.choice},       {"loss_weighted", plan.loss_weighted},
          {"predicted_delta_nll", plan.predicted_delta_nll}};
}

SearchResult plan_from_json(const nlohmann::json& j, const std::string& origin) {
  SearchResult plan;
  plan.method = json_field<std::string>(j, "method", origin);
  plan.target_bpw = json_field<double>(j, "target_bpw", origin);
  plan.achieved_bpw = json_field<double>(j, "achieved_bpw", origin);
  plan.max_eps = json_field<double>(j, "max_eps", origin);
  plan.sum_eps = json_field<double>(j, "sum_eps", origin);
  plan.threshold = json_field<double>(j, "threshold", origin);
  if (j.contains("loss_weighted")) plan.loss_weighted = json_field<bool>(j, "loss_weighted", origin);
  if (j.contains("predicted_delta_nll"))
    plan.predicted_delta_nll = json_field<double>(j, "predicted_delta_nll", origin);
  const auto& choice = json_member(j, "choice", origin);
  if (!choice.is_array()) AMLQ_FAIL(Input, "{}: 'choice' is not an array", origin);
  for (const auto& c : choice) {
    plan.choice.push_back(json_value_as<int>(c, "choice", origin));
    if (plan.choice.back() < 0) AMLQ_FAIL(Input, "{}: choice {} is negative", origin, plan.choice.back());
  }
  return plan;
}

void write_json_file(const std::string& path, const nlohmann::json& j) {
  AtomicOutput out(path);
  {
    std::ofstream f(out.temp_path());
    if (!f) AMLQ_FAIL(Output, "{}: cannot open for writing", out.temp_path());
    f << j.dump(1) << "\n";
    if (!f) AMLQ_FAIL(Output, "{}: write failed", out.temp_path());
  }
  out.commit();
}

nlohmann::json parse_json_text(std::string_view text, const std::string& origin) {
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for numbers like 1e400
    AMLQ_FAIL(Input, "{}: not valid JSON: {}", origin, e.what());
  }
}

namespace {

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) AMLQ_FAIL(Input, "{}: cannot open", path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) AMLQ_FAIL(Input, "{}: read error", path);
  return text;
}

}  // namespace

nlohmann::json read_json_file(const std::string& path) { return parse_json_text(read_text_file(path), path); }

std::vector<ListedChoice> read_listed_plan(const std::string& path) {
  return parse_listed_plan(read_text_file(path), path);
}

std::vector<ListedChoice> parse_listed_plan(std::string_view text, const std::string& path) {
  const nlohmann::json j = parse_json_text(text, path);
  if (!j.is_object() || !j.contains("layers") || !j["layers"].is_array() || j["layers"].empty())
    AMLQ_FAIL(Input, "{}: a plan needs a non-empty \"layers\" array of {{\"name\", \"spec\", \"rank\"}}", path);
  std::vector<ListedChoice> listed;
  for (const auto& l : j["layers"]) {
    const size_t i = listed.size();
    if (!l.is_object() || !l.contains("name") || !l["name"].is_string() || !l.contains("spec") || !l["spec"].is_string())
      AMLQ_FAIL(Input, "{}: layers[{}] needs a string \"name\" and a string \"spec\"", path, i);
    ListedChoice c;
    c.name = l["name"].get<std::string>();
    try {
      c.spec = QuantSpec::parse(l["spec"].get<std::string>());
    } catch (const Error& e) {
      AMLQ_FAIL(Input, "{}: layers[{}] ('{}'): {}", path, i, c.name, e.what());
    }
    if (l.contains("rank")) {
      if (!l["rank"].is_number_integer() || l["rank"].get<int64_t>() < 0 || l["rank"].get<int64_t>() > 1 << 20)
        AMLQ_FAIL(Input, "{}: layers[{}] ('{}'): rank must be a non-negative integer", path, i, c.name);
      c.rank = l["rank"].get<int>();
    }
    listed.push_back(std::move(c));
  }
  return listed;
}

std::string read_json_hash(const std::string& path) {
  if (!std::filesystem::exists(path)) return "";
  try {
    const auto j = read_json_file(path);
    const auto it = j.is_object() ? j.find("input_hash") : j.end();
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  } catch (const Error&) {
    return "";
  }
}

namespace {

std::string text_hash(const std::string& text) {
  Hasher h;
  h.update(std::string_view(text));
  return h.hex();
}

CheckpointCheck fail_check(CheckpointCheck::State state, std::string reason) {
  CheckpointCheck c;
  c.state = state;
  c.reason = std::move(reason);
  return c;
}

}  // namespace

void write_checkpoint_json(const std::string& path, const std::string& kind, const std::string& input_hash,
                           const nlohmann::json& payload) {
  nlohmann::json j;
  j["format"] = kind;
  j["input_hash"] = input_hash;
  j["content_hash"] = text_hash(payload.dump());
  j["payload"] = payload;
  write_json_file(path, j);
}

std::optional<nlohmann::json> read_checkpoint_json(const std::string& path, const std::string& kind,
                                                   const std::string& input_hash, CheckpointCheck& check) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    check = fail_check(CheckpointCheck::State::Missing, fmt::format("{}: does not exist", path));
    return std::nullopt;
  }
  nlohmann::json j;
  {
    std::ifstream in(path);
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      check = fail_check(CheckpointCheck::State::Damaged, fmt::format("{}: damaged (not valid JSON: {})", path, e.what()));
      return std::nullopt;
    }
  }
  if (!j.is_object() || !j.contains("format") || !j["format"].is_string() || !j.contains("input_hash") ||
      !j["input_hash"].is_string() || !j.contains("content_hash") || !j["content_hash"].is_string() ||
      !j.contains("payload")) {
    check = fail_check(CheckpointCheck::State::Damaged, fmt::format("{}: damaged (not an amlq checkpoint)", path));
    return std::nullopt;
  }
  if (j["format"].get<std::string>() != kind) {
    check = fail_check(CheckpointCheck::State::Damaged,
                       fmt::format("{}: holds a '{}', expected '{}'", path, j["format"].get<std::string>(), kind));
    return std::nullopt;
  }
  if (text_hash(j["payload"].dump()) != j["content_hash"].get<std::string>()) {
    check = fail_check(CheckpointCheck::State::Damaged, fmt::format("{}: damaged (content hash does not verify)", path));
    return std::nullopt;
  }
  if (j["input_hash"].get<std::string>() != input_hash) {
    check = fail_check(CheckpointCheck::State::Stale, fmt::format("{}: made from other inputs", path));
    return std::nullopt;
  }
  check = CheckpointCheck{CheckpointCheck::State::Valid, ""};
  return std::move(j["payload"]);
}

std::string seal_path(const std::string& file) { return file + ".seal.json"; }

void write_seal(const std::string& file, const std::string& kind, const std::string& input_hash) {
  Hasher h;
  h.update(hash_file(file));
  const auto bytes = static_cast<uint64_t>(std::filesystem::file_size(file));
  write_checkpoint_json(seal_path(file), "amlq-seal", input_hash,
                        {{"kind", kind}, {"file", std::filesystem::path(file).filename().string()}, {"bytes", bytes},
                         {"file_hash", h.hex()}});
}

CheckpointCheck check_seal(const std::string& file, const std::string& kind, const std::string& input_hash) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(file, ec)) return fail_check(CheckpointCheck::State::Missing, fmt::format("{}: does not exist", file));
  CheckpointCheck check;
  const auto seal = read_checkpoint_json(seal_path(file), "amlq-seal", input_hash, check);
  if (!seal) {
    if (check.state == CheckpointCheck::State::Missing)
      return fail_check(CheckpointCheck::State::Damaged, fmt::format("{}: has no seal (an interrupted write?)", file));
    return check;
  }
  try {
    if (seal->at("kind").get<std::string>() != kind)
      return fail_check(CheckpointCheck::State::Damaged,
                        fmt::format("{}: sealed as '{}', expected '{}'", file, seal->at("kind").get<std::string>(), kind));
    const auto size = fs::file_size(file, ec);
    if (ec || size != seal->at("bytes").get<uint64_t>())
      return fail_check(CheckpointCheck::State::Damaged,
                        fmt::format("{}: damaged ({} bytes, the seal says {})", file, size, seal->at("bytes").get<uint64_t>()));
    Hasher h;
    h.update(hash_file(file));
    if (h.hex() != seal->at("file_hash").get<std::string>())
      return fail_check(CheckpointCheck::State::Damaged, fmt::format("{}: damaged (content hash does not verify)", file));
  } catch (const nlohmann::json::exception& e) {
    return fail_check(CheckpointCheck::State::Damaged, fmt::format("{}: malformed seal: {}", seal_path(file), e.what()));
  } catch (const Error& e) {
    return fail_check(CheckpointCheck::State::Damaged, fmt::format("{}: unreadable: {}", file, e.what()));
  }
  return CheckpointCheck{CheckpointCheck::State::Valid, ""};
}

void remove_checkpoint(const std::string& file) {
  std::error_code ec;
  std::filesystem::remove(file, ec);
  std::filesystem::remove(seal_path(file), ec);
}

}  // namespace amlq
