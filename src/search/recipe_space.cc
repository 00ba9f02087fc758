#include "search/recipe_space.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include <fmt/format.h>

#include "core/error.h"
#include "search/flat_toml.h"

#ifndef AMLQ_CONFIG_DIR
#define AMLQ_CONFIG_DIR ""
#endif

namespace amlq {
namespace fs = std::filesystem;
namespace {

constexpr const char* kKnownKeys = "name, ranks, bits, groups, mixes, symmetric, act_order, static_groups";

class RecipeReader {
 public:
  explicit RecipeReader(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void fail(const toml::Entry& e, const std::string& what) const {
    AMLQ_FAIL(Input, "{}:{}: key '{}': {}", source_, e.line, e.key, what);
  }

  bool boolean(const toml::Entry& e) const {
    if (const bool* b = std::get_if<bool>(&e.value.data)) return *b;
    fail(e, "expected true or false, got a " + e.value.type_name());
  }
  std::string string(const toml::Entry& e) const {
    if (const auto* s = std::get_if<std::string>(&e.value.data)) return *s;
    fail(e, "expected a string, got a " + e.value.type_name());
  }
  const toml::Array& array(const toml::Entry& e) const {
    const auto* a = std::get_if<toml::Array>(&e.value.data);
    if (!a) fail(e, "expected an array, got a " + e.value.type_name());
    if (a->empty()) fail(e, "the array is empty");
    return *a;
  }
  std::vector<int> ints(const toml::Entry& e, int lo, int hi) const {
    std::vector<int> out;
    for (const auto& v : array(e)) {
      const auto* i = std::get_if<int64_t>(&v.data);
      if (!i) fail(e, "expected integers, got a " + v.type_name());
      if (*i < lo || *i > hi) fail(e, fmt::format("value {} is outside {}..{}", *i, lo, hi));
      if (std::find(out.begin(), out.end(), *i) != out.end()) fail(e, fmt::format("duplicate value {}", *i));
      out.push_back(static_cast<int>(*i));
    }
    return out;
  }
  std::vector<std::string> strings(const toml::Entry& e) const {
    std::vector<std::string> out;
    for (const auto& v : array(e)) {
      const auto* s = std::get_if<std::string>(&v.data);
      if (!s) fail(e, "expected strings, got a " + v.type_name());
      out.push_back(*s);
    }
    return out;
  }

 private:
  std::string source_;
};

void append_unique(std::vector<QuantSpec>& specs, const QuantSpec& spec, const std::string& source, int line,
                   const char* key) {
  if (std::find(specs.begin(), specs.end(), spec) != specs.end())
    AMLQ_FAIL(Input, "{}:{}: key '{}': spec {} is listed twice", source, line, key, spec.label());
  specs.push_back(spec);
}

fs::path executable_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : exe.parent_path();
}

}  // namespace

std::string find_config_file(const std::string& folder, const std::string& file, std::string& tried) {
  std::vector<fs::path> dirs;
  if (const char* env = std::getenv("AMLQ_CONFIG_DIR"); env && *env) dirs.emplace_back(env);
  if (const fs::path exe = executable_dir(); !exe.empty()) {
    dirs.push_back(exe / ".." / "share" / "amlq" / "configs");
    dirs.push_back(exe / ".." / "configs");
  }
  if (*AMLQ_CONFIG_DIR) dirs.emplace_back(AMLQ_CONFIG_DIR);
  tried.clear();
  for (const auto& dir : dirs) {
    const fs::path candidate = dir / folder / file;
    if (fs::is_regular_file(candidate)) return candidate.lexically_normal().string();
    tried += (tried.empty() ? "" : ", ") + candidate.lexically_normal().string();
  }
  return "";
}

RecipeSpace parse_recipe_space(const std::string& text, const std::string& source) {
  const auto entries = toml::parse_flat(text, source);
  const RecipeReader reader(source);
  const toml::Entry *name = nullptr, *ranks = nullptr, *bits = nullptr, *groups = nullptr, *mixes = nullptr;
  bool symmetric = false, act_order = true, static_groups = false;
  for (const auto& e : entries) {
    if (e.key == "name") name = &e;
    else if (e.key == "ranks") ranks = &e;
    else if (e.key == "bits") bits = &e;
    else if (e.key == "groups") groups = &e;
    else if (e.key == "mixes") mixes = &e;
    else if (e.key == "symmetric") symmetric = reader.boolean(e);
    else if (e.key == "act_order") act_order = reader.boolean(e);
    else if (e.key == "static_groups") static_groups = reader.boolean(e);
    else AMLQ_FAIL(Input, "{}:{}: unknown key '{}' (known: {})", source, e.line, e.key, kKnownKeys);
  }

  RecipeSpace space;
  space.name = name ? reader.string(*name) : fs::path(source).stem().string();
  if (space.name.empty()) reader.fail(*name, "the name is empty");
  if (!ranks) AMLQ_FAIL(Input, "{}: missing key 'ranks' (e.g. ranks = [0, 8, 16])", source);
  space.ranks = reader.ints(*ranks, 0, 1 << 16);
  std::sort(space.ranks.begin(), space.ranks.end());
  if (static_groups && !act_order)
    AMLQ_FAIL(Input, "{}: key 'static_groups': only meaningful with act_order = true", source);

  if ((bits == nullptr) != (groups == nullptr))
    AMLQ_FAIL(Input, "{}: keys 'bits' and 'groups' must be given together", source);
  if (bits) {
    const auto bit_list = reader.ints(*bits, 2, 8);
    const auto group_list = reader.ints(*groups, 0, 1 << 20);
    for (int b : bit_list) {
      for (int g : group_list) {
        QuantSpec spec;
        spec.parts = {QuantPart{b, g, 1.0}};
        spec.symmetric = symmetric;
        spec.act_order = act_order;
        spec.static_groups = static_groups;
        append_unique(space.specs, spec, source, bits->line, "bits");
      }
    }
  }
  if (mixes) {
    for (const auto& label : reader.strings(*mixes)) {
      QuantSpec spec;
      try {
        spec = QuantSpec::parse(label);
      } catch (const Error& err) {
        reader.fail(*mixes, err.what());
      }
      for (const auto& p : spec.parts)
        if (p.bits < 2 || p.bits > 8) reader.fail(*mixes, fmt::format("'{}' has {} bits, outside 2..8", label, p.bits));
      spec.symmetric = spec.symmetric || symmetric;
      spec.act_order = spec.act_order && act_order;
      append_unique(space.specs, spec, source, mixes->line, "mixes");
    }
  }
  if (space.specs.empty()) AMLQ_FAIL(Input, "{}: no specs: give 'bits' and 'groups', or 'mixes'", source);
  return space;
}

RecipeSpace load_recipe_space(const std::string& path_or_name) {
  if (path_or_name.empty()) AMLQ_FAIL(Usage, "recipe space: empty name");
  const bool is_path = path_or_name.find('/') != std::string::npos || path_or_name.ends_with(".toml");
  fs::path path;
  if (is_path) {
    path = path_or_name;
    if (!fs::is_regular_file(path)) AMLQ_FAIL(Input, "{}: recipe file not found", path_or_name);
  } else {
    const bool plain = std::all_of(path_or_name.begin(), path_or_name.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    });
    if (!plain) AMLQ_FAIL(Usage, "recipe space '{}': a name may only hold letters, digits, '_' and '-'", path_or_name);
    std::string tried;
    path = find_config_file("recipes", path_or_name + ".toml", tried);
    if (path.empty()) AMLQ_FAIL(Usage, "recipe space '{}' not found (looked in {})", path_or_name, tried);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) AMLQ_FAIL(Input, "{}: cannot open recipe file", path.string());
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) AMLQ_FAIL(Input, "{}: read error", path.string());
  return parse_recipe_space(text.str(), path.string());
}

std::vector<QuantSpec> RecipeSpace::applicable_specs(int rows, int cols, const std::string& layer_name) const {
  std::vector<QuantSpec> out;
  std::string first_reason;
  for (const auto& spec : specs) {
    try {
      spec.validate(rows, cols, layer_name);
      out.push_back(spec);
    } catch (const Error& err) {
      if (err.kind() != ErrorKind::Input) throw;
      if (first_reason.empty()) first_reason = err.what();
    }
  }
  if (out.empty())
    AMLQ_FAIL(Input, "recipe space '{}': none of its {} specs fits layer '{}' [{} x {}] (first: {})", name,
              specs.size(), layer_name, rows, cols, first_reason);
  return out;
}

}  // namespace amlq
