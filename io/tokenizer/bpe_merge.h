#pragma once
// The BPE merge loop shared by every tokenizer here: repeatedly merge the adjacent
// pair with the best (lowest) key, leftmost first among equal keys. That is
// SentencePiece/llama2.c's "highest score" rule (key = -score) and Hugging Face's
// "lowest merge rank" rule (key = rank) alike. A heap over a linked list of symbols
// makes it O(n log n), so a whole 1 MB text can be one "word" (llama2.c and the
// Llama-2 tokenizer.json have no pre-tokenizer).
#include <cstdint>
#include <queue>
#include <vector>

namespace amlq {

struct BpeMerge {
  double key = 0;  // lower merges first
  int32_t merged_id = -1;
};

// lookup(left_id, right_id, BpeMerge& out) -> bool: whether the pair merges.
// ids is replaced by the merged sequence.
template <class Lookup>
void bpe_merge_run(std::vector<int32_t>& ids, Lookup&& lookup) {
  const int32_t n = static_cast<int32_t>(ids.size());
  if (n < 2) return;
  struct Candidate {
    double key;
    int32_t left, right;          // positions
    int32_t left_id, right_id, merged_id;
    bool operator<(const Candidate& o) const {  // priority_queue pops the "largest"
      return key != o.key ? key > o.key : left > o.left;
    }
  };
  std::vector<int32_t> prev(static_cast<size_t>(n)), next(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    prev[static_cast<size_t>(i)] = i - 1;
    next[static_cast<size_t>(i)] = i + 1 < n ? i + 1 : -1;
  }
  std::vector<Candidate> storage;
  storage.reserve(static_cast<size_t>(n));
  std::priority_queue<Candidate> heap(std::less<Candidate>(), std::move(storage));
  auto consider = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    BpeMerge m;
    const int32_t a = ids[static_cast<size_t>(left)], b = ids[static_cast<size_t>(right)];
    if (lookup(a, b, m)) heap.push({m.key, left, right, a, b, m.merged_id});
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i, i + 1);
  // A symbol's start never moves and its id only changes by absorbing its right
  // neighbour, so (position, id) pins down a span: a candidate is current iff both
  // ids and the link between them are unchanged.
  std::vector<char> alive(static_cast<size_t>(n), 1);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    const auto l = static_cast<size_t>(c.left), r = static_cast<size_t>(c.right);
    if (!alive[l] || next[l] != c.right || ids[l] != c.left_id || ids[r] != c.right_id) continue;
    ids[l] = c.merged_id;
    alive[r] = 0;
    next[l] = next[r];
    if (next[r] >= 0) prev[static_cast<size_t>(next[r])] = c.left;
    consider(prev[l], c.left);
    consider(c.left, next[l]);
  }
  size_t out = 0;
  for (int32_t i = 0; i >= 0; i = next[static_cast<size_t>(i)]) ids[out++] = ids[static_cast<size_t>(i)];
  ids.resize(out);
}

// As bpe_merge_run, where inert(id) says that id takes part in no merge at all. Such
// a symbol never changes and no pair spans it, so the runs between inert symbols
// merge independently with exactly the same result, on small cache-friendly heaps
// (a newline, a byte-fallback token, is inert in SentencePiece vocabularies).
template <class Lookup, class Inert>
void bpe_merge(std::vector<int32_t>& ids, Lookup&& lookup, Inert&& inert) {
  const size_t n = ids.size();
  std::vector<int32_t> run;
  size_t out = 0, i = 0;
  while (i < n) {
    if (inert(ids[i])) {
      ids[out++] = ids[i++];
      continue;
    }
    size_t j = i;
    while (j < n && !inert(ids[j])) ++j;
    run.assign(ids.begin() + static_cast<ptrdiff_t>(i), ids.begin() + static_cast<ptrdiff_t>(j));
    bpe_merge_run(run, lookup);
    for (const int32_t id : run) ids[out++] = id;  // out <= i: merging only shrinks
    i = j;
  }
  ids.resize(out);
}

}  // namespace amlq
