#pragma once
// Small JSON checkpoints (measurement table, plan), written atomically.
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "search/measurement.h"
#include "search/search.h"

namespace amlq {

nlohmann::json table_to_json(const MeasurementTable& table);
// The *_from_json readers throw Input naming `origin` on any defect (wrong JSON
// types, out-of-range numbers, bad spec labels); the table is not checked against
// a model here (validate_table and the stages do that).
MeasurementTable table_from_json(const nlohmann::json& j, const std::string& origin);
nlohmann::json plan_to_json(const SearchResult& plan);
SearchResult plan_from_json(const nlohmann::json& j, const std::string& origin);

// A plan file for `--search plan:<file>`: a JSON object whose "layers" array
// names every quantized linear's configuration, [{"name": ..., "spec": "3b-g64",
// "rank": 0}, ...] (rank optional, default 0). A quantize report is one, so a
// previous run's allocation can be packed again, edited or not. Throws Input
// naming the file on any defect.
std::vector<ListedChoice> read_listed_plan(const std::string& path);
// The same from the file's text; `origin` names it in errors.
std::vector<ListedChoice> parse_listed_plan(std::string_view text, const std::string& origin);

void write_json_file(const std::string& path, const nlohmann::json& j);
// Throws Input naming the file when it is missing or not JSON.
nlohmann::json read_json_file(const std::string& path);
// The parser behind read_json_file (`origin` names the text in errors).
nlohmann::json parse_json_text(std::string_view text, const std::string& origin);
// The "input_hash" of a JSON checkpoint, or "" when absent/unreadable.
std::string read_json_hash(const std::string& path);

// Stage checkpoints that cannot lie. A JSON checkpoint holds
//   {"format": <kind>, "input_hash": <hash of what it was made from>,
//    "content_hash": <hash of the payload's text>, "payload": ...}
// and a binary checkpoint (HDF5) gets a seal written after it, <file>.seal.json,
// with its kind, input hash, size and content hash. A checkpoint is used only
// when its kind and input hash match and its content hash verifies: a
// truncated, bit-flipped or foreign file is never fed to the next stage.
void write_checkpoint_json(const std::string& path, const std::string& kind, const std::string& input_hash,
                           const nlohmann::json& payload);

// Why a checkpoint cannot be used: absent (normal for a first run), made from
// other inputs (stale), or damaged (truncated, corrupted, foreign). `reason`
// names the file and the problem, for a warning.
struct CheckpointCheck {
  enum class State { Valid, Missing, Stale, Damaged } state = State::Missing;
  std::string reason;
  bool valid() const { return state == State::Valid; }
};
// The payload when valid; otherwise nullopt and `check` says why.
std::optional<nlohmann::json> read_checkpoint_json(const std::string& path, const std::string& kind,
                                                   const std::string& input_hash, CheckpointCheck& check);

std::string seal_path(const std::string& file);
// Writes <file>.seal.json for a finished file (atomically, after the file).
void write_seal(const std::string& file, const std::string& kind, const std::string& input_hash);
CheckpointCheck check_seal(const std::string& file, const std::string& kind, const std::string& input_hash);
// Removes a checkpoint file and its seal (missing files are fine).
void remove_checkpoint(const std::string& file);

}  // namespace amlq
