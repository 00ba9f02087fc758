// Recipe spaces (--recipes FILE.toml, configs/recipes/*.toml): the flat TOML
// parser, the recipe reader, then what measure does with the space.
#include "search/recipe_space.h"
#include "tests/fuzz/fuzz_target.h"

namespace amlq {

AMLQ_FUZZ_TARGET(recipe_toml, ErrorKind::Input) {
  const RecipeSpace space = parse_recipe_space(std::string(fuzz::text(input)), "fuzz.toml");
  AMLQ_FUZZ_CHECK(!space.specs.empty() && !space.ranks.empty(), "{} specs, {} ranks", space.specs.size(),
                  space.ranks.size());
  for (const auto& spec : space.specs) {
    // Labels name specs in measure.json and the report: they must read back as the same spec.
    AMLQ_FUZZ_CHECK(QuantSpec::parse(spec.label()) == spec, "label {} does not round-trip", spec.label());
  }
  for (const auto& shape : {std::pair{64, 64}, {48, 200}, {4096, 11008}})
    fuzz::tolerate(ErrorKind::Input, [&] { (void)space.applicable_specs(shape.first, shape.second, "fuzz.layer"); });
}

}  // namespace amlq
