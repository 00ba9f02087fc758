#pragma once
// Host-side planning of a GPU GPTQ run: which columns are dead, the act-order
// permutation, the resolved parts, and the column blocks the device processes.
// Plain C++ (no CUDA) so CPU-only tests cover it.
#include <cstdint>
#include <utility>
#include <vector>

#include "kernels/column_block.h"
#include "quant/quant_spec.h"

namespace amlq::cuda {

struct ColumnPrep {
  std::vector<int32_t> perm;  // processing order -> original column; empty = identity
  std::vector<uint8_t> dead;  // per original column: H_ii == 0 (its weights are zeroed, H_ii := 1)
  int dead_count = 0;
  double mean_diag = 0;  // mean of diag(H) after the dead-column fix (dampening base)
};

// From diag(H): act_order sorts columns by descending diagonal (after the dead
// fix), ties in original order, so the permutation is deterministic.
ColumnPrep prepare_columns(std::vector<double> diag, bool act_order);

struct PartPlan {
  int col_begin = 0;  // processing order
  int col_end = 0;
  int bits = 4;
  int group = 128;  // resolved: a whole-row group is the part width (static groups: see below)
  int num_groups = 0;
};

// `ranges` are QuantSpec::part_columns(cols). Groups are runs of `group`
// columns from the part's start, the last one shorter when `group` does not
// divide the width: num_groups = ceil(width / group). With static groups (one
// part) the groups are over ORIGINAL columns: num_groups = ceil(cols / group).
std::vector<PartPlan> resolve_parts(const std::vector<std::pair<int, int>>& ranges, const QuantSpec& spec,
                                    int cols);

// The CPU solver's column blocks (quant/gptq.h gptq_blocks) of width
// min(block_size, kGptqMaxBlock), tagged with their part. A group may start
// inside a block or run past its end; its parameters come from the weights as
// they stood when the block began (METHOD.md 3).
std::vector<ColumnBlock> plan_blocks(const std::vector<PartPlan>& parts, int block_size);

}  // namespace amlq::cuda
