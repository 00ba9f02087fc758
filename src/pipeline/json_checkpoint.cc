#include "pipeline/json_checkpoint.h"

#include <filesystem>
#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"

namespace amlq {

nlohmann::json table_to_json(const MeasurementTable& table) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& layer : table) {
    nlohmann::json candidates = nlohmann::json::array();
    for (const auto& c : layer.candidates) candidates.push_back({c.spec.label(), c.rank, c.bpw, c.eps});
    rows.push_back({{"name", layer.name}, {"rows", layer.rows}, {"cols", layer.cols}, {"candidates", candidates}});
  }
  return rows;
}

MeasurementTable table_from_json(const nlohmann::json& j, const std::string& origin) {
  MeasurementTable table;
  try {
    for (const auto& row : j) {
      LayerMeasurement layer;
      layer.name = row.at("name").get<std::string>();
      layer.rows = row.at("rows").get<int>();
      layer.cols = row.at("cols").get<int>();
      for (const auto& c : row.at("candidates")) {
        Candidate cand;
        cand.spec = QuantSpec::parse(c.at(0).get<std::string>());
        cand.rank = c.at(1).get<int>();
        cand.bpw = c.at(2).get<double>();
        cand.eps = c.at(3).get<double>();
        layer.candidates.push_back(cand);
      }
      table.push_back(std::move(layer));
    }
  } catch (const nlohmann::json::exception& e) {
    AMLQ_FAIL(Input, "{}: malformed measurement table: {}", origin, e.what());
  }
  return table;
}

nlohmann::json plan_to_json(const SearchResult& plan) {
  return {{"method", plan.method},       {"target_bpw", plan.target_bpw}, {"achieved_bpw", plan.achieved_bpw},
          {"max_eps", plan.max_eps},     {"sum_eps", plan.sum_eps},       {"threshold", plan.threshold},
          {"choice", plan.choice}};
}

SearchResult plan_from_json(const nlohmann::json& j, const std::string& origin) {
  SearchResult plan;
  try {
    plan.method = j.at("method").get<std::string>();
    plan.target_bpw = j.at("target_bpw").get<double>();
    plan.achieved_bpw = j.at("achieved_bpw").get<double>();
    plan.max_eps = j.at("max_eps").get<double>();
    plan.sum_eps = j.at("sum_eps").get<double>();
    plan.threshold = j.at("threshold").get<double>();
    plan.choice = j.at("choice").get<std::vector<int>>();
  } catch (const nlohmann::json::exception& e) {
    AMLQ_FAIL(Input, "{}: malformed plan: {}", origin, e.what());
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

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) AMLQ_FAIL(Input, "{}: cannot open", path);
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    AMLQ_FAIL(Input, "{}: not valid JSON: {}", path, e.what());
  }
}

std::string read_json_hash(const std::string& path) {
  if (!std::filesystem::exists(path)) return "";
  try {
    const auto j = read_json_file(path);
    return j.value("input_hash", std::string());
  } catch (const Error&) {
    return "";
  }
}

}  // namespace amlq
