// A plan file for `--search plan:<file>` (any quantize report is one).
#include "pipeline/json_checkpoint.h"
#include "tests/fuzz/fuzz_target.h"

namespace amlq {

AMLQ_FUZZ_TARGET(listed_plan_json, ErrorKind::Input) {
  const std::vector<ListedChoice> listed = parse_listed_plan(fuzz::text(input), "plan.json");
  AMLQ_FUZZ_CHECK(!listed.empty(), "an accepted plan lists no linear");
  for (const ListedChoice& c : listed) {
    AMLQ_FUZZ_CHECK(c.rank >= 0, "an accepted plan has a negative rank");
    // What a report would write back must parse to the same configuration.
    AMLQ_FUZZ_CHECK(QuantSpec::parse(c.spec.label()) == c.spec, "spec label does not round-trip");
  }
}

}  // namespace amlq
