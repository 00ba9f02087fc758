#include "search/recipe_space.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "tests/test_util.h"

namespace amlq {
namespace {

std::vector<std::string> labels(const std::vector<QuantSpec>& specs) {
  std::vector<std::string> out;
  for (const auto& s : specs) out.push_back(s.label());
  return out;
}

std::string error_of(const std::string& text, ErrorKind expected = ErrorKind::Input) {
  try {
    parse_recipe_space(text, "bad.toml");
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), expected) << e.what();
    return e.what();
  }
  return "<no error>";
}

TEST(RecipeSpace, LoadsFastByName) {
  const RecipeSpace fast = load_recipe_space("fast");
  EXPECT_EQ(fast.name, "fast");
  EXPECT_EQ(fast.ranks, (std::vector<int>{0, 8, 16}));
  EXPECT_EQ(labels(fast.specs), (std::vector<std::string>{"2b-g32", "2b-g64", "3b-g32", "3b-g64", "4b-g32",
                                                          "4b-g64", "25%4b-g64+75%3b-g64"}));
  EXPECT_EQ(fast.size(), 21u);
  for (const auto& s : fast.specs) {
    EXPECT_FALSE(s.symmetric);
    EXPECT_TRUE(s.act_order);
  }
}

TEST(RecipeSpace, LoadsDefaultByPath) {
  const RecipeSpace def = load_recipe_space(std::string(AMLQ_SOURCE_DIR) + "/configs/recipes/default.toml");
  EXPECT_EQ(def.name, "default");
  EXPECT_EQ(def.ranks, (std::vector<int>{0, 8, 16, 32, 64, 128}));
  EXPECT_EQ(def.specs.size(), 4u * 3u + 4u);
  EXPECT_EQ(def.specs.front().label(), "2b-g32");
  EXPECT_EQ(def.specs[11].label(), "8b-g128");
  EXPECT_EQ(def.specs[12].label(), "25%4b-g64+75%3b-g128");
}

TEST(RecipeSpace, NameLookupHonoursTheEnvironmentAndReportsWhereItLooked) {
  test::TempDir dir;
  std::filesystem::create_directories(dir.path() / "recipes");
  std::ofstream(dir.path() / "recipes" / "mine.toml") << "ranks = [4]\nmixes = [\"3b-row\"]\n";
  ::setenv("AMLQ_CONFIG_DIR", dir.path().c_str(), 1);
  const RecipeSpace mine = load_recipe_space("mine");
  EXPECT_EQ(mine.name, "mine");  // from the file name
  EXPECT_EQ(labels(mine.specs), std::vector<std::string>{"3b-row"});
  EXPECT_EQ(load_recipe_space("fast").name, "fast");  // falls through to the source tree
  ::unsetenv("AMLQ_CONFIG_DIR");

  try {
    load_recipe_space("nonexistent");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Usage);
    EXPECT_NE(std::string(e.what()).find("recipes/nonexistent.toml"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_recipe_space("../fast"), Error);
  try {
    load_recipe_space("no/such/file.toml");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input);
    EXPECT_EQ(std::string(e.what()), "no/such/file.toml: recipe file not found");
  }
}

TEST(RecipeSpace, FileWideFlagsApplyToGridAndMixes) {
  const RecipeSpace s = parse_recipe_space(
      "ranks = [16, 0]\nbits = [4]\ngroups = [128, 0]\nmixes = [\"50%4b-g64+50%3b-g64-noact\"]\n"
      "symmetric = true\n",
      "x.toml");
  EXPECT_EQ(s.name, "x");
  EXPECT_EQ(s.ranks, (std::vector<int>{0, 16}));  // sorted
  EXPECT_EQ(labels(s.specs), (std::vector<std::string>{"4b-g128-sym", "4b-row-sym", "50%4b-g64+50%3b-g64-sym-noact"}));
}

TEST(RecipeSpace, MalformedFilesNameFileAndKey) {
  EXPECT_EQ(error_of("ranks = [0]\nbits = [4]\ngroups = [64]\ncolour = 3\n"),
            "bad.toml:4: unknown key 'colour' (known: name, ranks, bits, groups, mixes, symmetric, act_order, "
            "static_groups)");
  EXPECT_EQ(error_of("ranks = [0]\nbits = [4, 9]\ngroups = [64]\n"),
            "bad.toml:2: key 'bits': value 9 is outside 2..8");
  EXPECT_EQ(error_of("ranks = [0, 0]\nbits = [4]\ngroups = [64]\n"), "bad.toml:1: key 'ranks': duplicate value 0");
  EXPECT_EQ(error_of("ranks = 8\nbits = [4]\ngroups = [64]\n"),
            "bad.toml:1: key 'ranks': expected an array, got a integer");
  EXPECT_EQ(error_of("ranks = [0]\nbits = [\"4\"]\ngroups = [64]\n"),
            "bad.toml:2: key 'bits': expected integers, got a string");
  EXPECT_EQ(error_of("ranks = [0]\nbits = [4]\n"), "bad.toml: keys 'bits' and 'groups' must be given together");
  EXPECT_EQ(error_of("bits = [4]\ngroups = [64]\n"), "bad.toml: missing key 'ranks' (e.g. ranks = [0, 8, 16])");
  EXPECT_EQ(error_of("ranks = [0]\n"), "bad.toml: no specs: give 'bits' and 'groups', or 'mixes'");
  EXPECT_EQ(error_of("ranks = [0]\nsymmetric = 1\nmixes = [\"4b-g64\"]\n"),
            "bad.toml:2: key 'symmetric': expected true or false, got a integer");
  EXPECT_EQ(error_of("ranks = [0]\nbits = [4]\ngroups = [64]\nmixes = [\"4b-g64\"]\n"),
            "bad.toml:4: key 'mixes': spec 4b-g64 is listed twice");
  EXPECT_EQ(error_of("ranks = [0]\nmixes = []\n"), "bad.toml:2: key 'mixes': the array is empty");
  const std::string bad_mix = error_of("ranks = [0]\nmixes = [\"25%4b-g64+70%3b-g128\"]\n");
  EXPECT_EQ(bad_mix.rfind("bad.toml:2: key 'mixes': ", 0), 0u) << bad_mix;
  EXPECT_NE(bad_mix.find("25%4b-g64+70%3b-g128"), std::string::npos) << bad_mix;
  EXPECT_EQ(error_of("ranks = [0\n"), "bad.toml:2: unterminated array for 'ranks'");
}

TEST(RecipeSpace, ApplicableSpecsDropsGroupsWiderThanTheLayer) {
  const RecipeSpace def = load_recipe_space("default");
  const auto narrow = labels(def.applicable_specs(256, 64, "tiny"));
  EXPECT_EQ(std::count_if(narrow.begin(), narrow.end(), [](const std::string& l) { return l.find("g128") != l.npos; }),
            0);
  EXPECT_NE(std::find(narrow.begin(), narrow.end(), "4b-g64"), narrow.end());
  EXPECT_EQ(def.applicable_specs(4096, 4096).size(), def.specs.size());

  const RecipeSpace fast = load_recipe_space("fast");
  try {
    fast.applicable_specs(16, 24, "model.layers.0.odd");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input);
    const std::string msg = e.what();
    EXPECT_NE(msg.find("recipe space 'fast': none of its 7 specs fits layer 'model.layers.0.odd' [16 x 24]"),
              std::string::npos)
        << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos);
  }
}

}  // namespace
}  // namespace amlq
