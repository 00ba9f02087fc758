#include "kernels/gptq_plan.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "kernels/launch_geometry.h"

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

std::vector<ColumnBlock> plan_blocks(const std::vector<PartPlan>& parts, int block_size, bool static_groups) {
  const int cap = std::clamp(block_size, 1, kGptqMaxBlock);
  std::vector<ColumnBlock> blocks;
  for (size_t p = 0; p < parts.size(); ++p) {
    const PartPlan& part = parts[p];
    const int part_index = static_cast<int>(p);
    if (static_groups) {
      for (int c = part.col_begin; c < part.col_end; c += cap)
        blocks.push_back({c, std::min(c + cap, part.col_end), part_index});
      continue;
    }
    const int g = part.group;
    if (g <= cap) {
      const int step = (cap / g) * g;
      for (int c = part.col_begin; c < part.col_end; c += step)
        blocks.push_back({c, std::min(c + step, part.col_end), part_index});
    } else {
      for (int g0 = part.col_begin; g0 < part.col_end; g0 += g) {
        const int g1 = std::min(g0 + g, part.col_end);
        for (int c = g0; c < g1; c += cap) blocks.push_back({c, std::min(c + cap, g1), part_index});
      }
    }
  }
  return blocks;
}

}  // namespace amlq::cuda
