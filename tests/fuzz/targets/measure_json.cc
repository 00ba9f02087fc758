// The measure stage's checkpoints (<work>/measure.json, <work>/measure/layer_NNNNN.json)
// as --resume reads them: first the checkpoint envelope (format, input hash, content
// hash), which must turn any damage into "not valid, recompute" and never throw;
// then the measurement table inside it, handed to the search as quantize_job does.
#include "io/json_value.h"
#include "pipeline/json_checkpoint.h"
#include "search/search.h"
#include "tests/fuzz/fuzz_target.h"

namespace amlq {

AMLQ_FUZZ_TARGET(measure_json, ErrorKind::Input, ErrorKind::Usage) {
  const std::string origin = "measure.json";
  {
    CheckpointCheck check;
    std::optional<nlohmann::json> payload;
    try {
      payload = read_checkpoint_json(fuzz::write_scratch(".json", input), "amlq-measurements", "fuzz-hash", check);
    } catch (const std::exception& e) {
      fuzz::fail(fmt::format("read_checkpoint_json threw instead of reporting a damaged file: {}", e.what()));
    }
    AMLQ_FUZZ_CHECK(payload.has_value() == (check.state == CheckpointCheck::State::Valid), "state {} vs payload {}",
                    static_cast<int>(check.state), payload.has_value());
    if (payload) fuzz::tolerate(ErrorKind::Input, [&] { (void)table_from_json(*payload, origin); });
  }
  // The table itself, without the content hash in the way.
  const auto j = parse_json_text(fuzz::text(input), origin);
  const MeasurementTable table = table_from_json(j.is_object() ? json_member(j, "payload", origin) : j, origin);
  // What the file says must survive a write and a read unchanged.
  AMLQ_FUZZ_CHECK(table_from_json(table_to_json(table), origin) == table, "table does not round-trip");
  validate_table(table);  // Input
  // The search's own complaints about an impossible target are Usage errors.
  for (const char* method : {"minmax", "minsum", "minsum-lagrange"}) {
    fuzz::tolerate(ErrorKind::Usage, [&] {
      const SearchResult r = run_search(table, method, 3.0);
      AMLQ_FUZZ_CHECK(r.choice.size() == table.size(), "{}: {} choices", method, r.choice.size());
      (void)format_allocation(table, r);
    });
  }
  fuzz::tolerate(ErrorKind::Usage, [&] { (void)run_search(table, "uniform:" + table[0].candidates[0].spec.label(), 0); });
}

}  // namespace amlq
