#pragma once
// Small JSON checkpoints (measurement table, plan), written atomically.
#include <nlohmann/json.hpp>
#include <string>

#include "search/measurement.h"
#include "search/search.h"

namespace amlq {

nlohmann::json table_to_json(const MeasurementTable& table);
MeasurementTable table_from_json(const nlohmann::json& j, const std::string& origin);
nlohmann::json plan_to_json(const SearchResult& plan);
SearchResult plan_from_json(const nlohmann::json& j, const std::string& origin);

void write_json_file(const std::string& path, const nlohmann::json& j);
// Throws Input naming the file when it is missing or not JSON.
nlohmann::json read_json_file(const std::string& path);
// The "input_hash" of a JSON checkpoint, or "" when absent/unreadable.
std::string read_json_hash(const std::string& path);

}  // namespace amlq
