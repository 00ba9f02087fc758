#pragma once
// Greedy decoding (argmax, no sampling): a smoke test of a whole model.
#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "model/model_weights.h"

namespace amlq {

// Returns prompt + up to new_tokens generated ids (stops early at EOS when
// stop_at_eos, or at max_position). Recomputes the whole prefix per step (no KV
// cache): fine for the short generations it is meant for.
std::vector<int32_t> greedy_generate(Backend& backend, const ModelWeights& weights, std::vector<int32_t> prompt,
                                     int new_tokens, bool stop_at_eos);

}  // namespace amlq
