#include "kernels/gptq_plan.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "kernels/launch_geometry.h"
#include "quant/gptq.h"

namespace amlq::cuda {

ColumnPrep prepare_columns(std::vector<double> diag, bool act_order) {
  const int n = static_cast<int>(diag.size());
  ColumnPrep prep;
  prep.dead.assign(n, 0);
  double sum = 0;
  for (int i = 0; i < n; ++i) {
    if (diag[i] == 0) {
      prep.dead[i] = 1;
      ++prep.dead_count;
      diag[i] = 1;
    }
    sum += diag[i];
  }
  prep.mean_diag = n > 0 ? sum / n : 0;
  if (act_order) {
    prep.perm.resize(n);
    std::iota(prep.perm.begin(), prep.perm.end(), 0);
    std::stable_sort(prep.perm.begin(), prep.perm.end(), [&](int32_t a, int32_t b) { return diag[a] > diag[b]; });
  }
  return prep;
}

std::vector<PartPlan> resolve_parts(const std::vector<std::pair<int, int>>& ranges, const QuantSpec& spec,
                                    int cols) {
  AMLQ_ASSERT(ranges.size() == spec.parts.size(), "{} column ranges for {} parts", ranges.size(),
              spec.parts.size());
  AMLQ_ASSERT(!spec.static_groups || spec.parts.size() == 1, "static groups need a single part, got {}",
              spec.parts.size());
  std::vector<PartPlan> out;
  for (size_t p = 0; p < ranges.size(); ++p) {
    PartPlan plan;
    plan.col_begin = ranges[p].first;
    plan.col_end = ranges[p].second;
    plan.bits = spec.parts[p].bits;
    const int width = plan.col_end - plan.col_begin;
    const int span = spec.static_groups ? cols : width;
    plan.group = spec.parts[p].group > 0 ? spec.parts[p].group : std::max(span, 1);
    plan.num_groups = static_cast<int>(ceil_div(span, plan.group));
    out.push_back(plan);
  }
  return out;
}

std::vector<ColumnBlock> plan_blocks(const std::vector<PartPlan>& parts, int block_size) {
  const int cap = std::clamp(block_size, 1, kGptqMaxBlock);
  std::vector<ColumnBlock> blocks;
  for (size_t p = 0; p < parts.size(); ++p)
    for (const auto& [begin, end] : gptq_blocks({{parts[p].col_begin, parts[p].col_end}}, cap))
      blocks.push_back({begin, end, static_cast<int>(p)});
  return blocks;
}

}  // namespace amlq::cuda
