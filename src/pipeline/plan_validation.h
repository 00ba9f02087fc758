#pragma once
// Validation of candidate plans (--validate-windows): the search's plan and
// the alternatives search/search.h's plan_alternatives() names are each packed
// (pack pass, into pack/candidate-K/), then this pass runs a few held-out
// calibration windows through every candidate's quantized model and the FP one,
// and the run keeps the candidate with the lowest mean token NLL.
//
// Why: the loss-weighted search sums per-linear sensitivities, which is right
// for each error alone but can be wrong for them together (bench/RESULTS.md,
// "One bit move at a time": on stories260K its mixed plans lose to uniform at
// uniform's own budget). Measuring the finished plans settles it for the cost
// of one pack pass per extra candidate and a forward of the windows.
//
// Distribution: as the sensitivity pass: replica 0 of each stage forwards all
// streams through its layers (each candidate's layer read from its pack
// checkpoints) and sends them on; the last stage scores them. Every stream is
// computed alone, in the same shapes, so the result does not depend on the
// rank layout.
#include <cstdint>
#include <vector>

#include "pipeline/layer_passes.h"

namespace amlq {

struct ValidationResult {
  std::vector<double> nll;  // mean token NLL per candidate, in candidate order
  double fp_nll = 0;        // the FP model's on the same windows
};

// Collective over ctx.world. candidates[k].pack_layer(layer) holds candidate
// k's packed layer (this stage's layers). `windows` (their ids) is needed on the
// first and the last stage's replica 0 only. Same result on every rank.
ValidationResult validation_pass(PassContext& ctx, const std::vector<WorkDir>& candidates,
                                 const std::vector<std::vector<int32_t>>& windows);

}  // namespace amlq
