#include <gtest/gtest.h>

#include <map>
#include <random>

#include "io/tokenizer/bpe_merge.h"

namespace amlq {
namespace {

using MergeTable = std::map<std::pair<int32_t, int32_t>, BpeMerge>;

// The textbook loop (llama2.c's): scan for the best pair, leftmost among equals, merge, repeat.
std::vector<int32_t> reference_merge(std::vector<int32_t> ids, const MergeTable& table) {
  for (;;) {
    size_t best = SIZE_MAX;
    BpeMerge best_merge;
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      const auto it = table.find({ids[i], ids[i + 1]});
      if (it != table.end() && (best == SIZE_MAX || it->second.key < best_merge.key)) {
        best = i;
        best_merge = it->second;
      }
    }
    if (best == SIZE_MAX) return ids;
    ids[best] = best_merge.merged_id;
    ids.erase(ids.begin() + static_cast<ptrdiff_t>(best) + 1);
  }
}

TEST(BpeMerge, MatchesReferenceLoopOnRandomTables) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    // Symbols 0..5 are the alphabet; merges create 6.. and may chain. Symbol 9 is in no merge.
    MergeTable table;
    std::vector<char> mergeable(64, 0);
    int32_t next = 6;
    const int merges = 4 + static_cast<int>(rng() % 12);
    for (int m = 0; m < merges; ++m) {
      const int32_t a = static_cast<int32_t>(rng() % static_cast<unsigned>(next));
      const int32_t b = static_cast<int32_t>(rng() % static_cast<unsigned>(next));
      if (a == 9 || b == 9 || table.count({a, b})) continue;
      // Few distinct keys, so ties (resolved leftmost) are common.
      if (next == 9) ++next;  // 9 stays inert
      table[{a, b}] = BpeMerge{static_cast<double>(rng() % 4), next};
      mergeable[static_cast<size_t>(a)] = mergeable[static_cast<size_t>(b)] = 1;
      ++next;
    }
    std::vector<int32_t> ids(1 + rng() % 40);
    for (auto& id : ids) id = rng() % 7 == 0 ? 9 : static_cast<int32_t>(rng() % 6);
    const auto expected = reference_merge(ids, table);
    auto lookup = [&](int32_t a, int32_t b, BpeMerge& out) {
      const auto it = table.find({a, b});
      if (it == table.end()) return false;
      out = it->second;
      return true;
    };
    auto whole = ids;
    bpe_merge_run(whole, lookup);
    EXPECT_EQ(whole, expected) << "trial " << trial;
    auto split = ids;
    bpe_merge(split, lookup, [&](int32_t id) { return !mergeable[static_cast<size_t>(id)]; });
    EXPECT_EQ(split, expected) << "trial " << trial;
  }
}

TEST(BpeMerge, LeftmostWinsAmongEqualKeys) {
  // a a a with (a,a)->b: the left pair merges first -> b a, not a b.
  std::vector<int32_t> ids{0, 0, 0};
  bpe_merge_run(ids, [](int32_t a, int32_t b, BpeMerge& m) {
    if (a != 0 || b != 0) return false;
    m = {1.0, 1};
    return true;
  });
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 0}));
}

}  // namespace
}  // namespace amlq
