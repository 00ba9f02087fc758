// The search stage's plan (<work>/plan.json and the plan message every rank reads).
#include "io/json_value.h"
#include "pipeline/json_checkpoint.h"
#include "tests/fuzz/fuzz_target.h"

namespace amlq {

AMLQ_FUZZ_TARGET(plan_json, ErrorKind::Input) {
  const std::string origin = "plan.json";
  const auto j = parse_json_text(fuzz::text(input), origin);
  const SearchResult plan = plan_from_json(json_member(j, "plan", origin), origin);
  const SearchResult again = plan_from_json(plan_to_json(plan), origin);
  AMLQ_FUZZ_CHECK(again.choice == plan.choice && again.method == plan.method, "plan does not round-trip");
}

}  // namespace amlq
