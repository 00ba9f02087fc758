#pragma once
// A recipe space: the candidate configurations the measure stage tries on every
// layer (quantization specs x low-rank ranks), loaded from configs/recipes/*.toml.
//
//   name = "default"
//   ranks = [0, 8, 16, 32, 64, 128]
//   bits = [2, 3, 4, 8]                 # crossed with groups: 2b-g32, 2b-g64, ...
//   groups = [32, 64, 128]              # 0 = the whole row is one group
//   mixes = ["25%4b-g64+75%3b-g128"]    # QuantSpec labels, added after the grid
//   symmetric = false                   # applies to every spec ("-sym" in a mix adds it)
//   act_order = true                    # applies to every spec ("-noact" in a mix removes it)
//   static_groups = false               # single-part grid specs only
#include <string>
#include <vector>

#include "quant/quant_spec.h"

namespace amlq {

struct RecipeSpace {
  std::string name;
  std::vector<QuantSpec> specs;  // grid (bits outer, groups inner), then mixes; no duplicates
  std::vector<int> ranks;        // ascending order as written; no duplicates; 0 = no correction

  // The specs whose part/group layout fits a rows x cols layer (QuantSpec::validate),
  // e.g. g128 is dropped for a 64-wide layer. Throws Input naming the layer when none fits.
  std::vector<QuantSpec> applicable_specs(int rows, int cols, const std::string& layer_name = "") const;
  size_t size() const { return specs.size() * ranks.size(); }
};

// path_or_name: a file path (contains '/' or ends in ".toml"), or a name such as
// "fast", looked up as <dir>/recipes/<name>.toml in: $AMLQ_CONFIG_DIR, then
// <executable dir>/../share/amlq/configs and <executable dir>/../configs, then
// the source tree's configs/ (compile-time AMLQ_CONFIG_DIR).
// Malformed files throw Input "<file>: ..." naming the key.
RecipeSpace load_recipe_space(const std::string& path_or_name);

// <dir>/<folder>/<file> in the first of the directories above that has it, or ""
// (then `tried` lists the paths looked at). Shared by every configs/ lookup.
std::string find_config_file(const std::string& folder, const std::string& file, std::string& tried);

// Parses recipe TOML text; `source` names the file in errors.
RecipeSpace parse_recipe_space(const std::string& text, const std::string& source);

}  // namespace amlq
