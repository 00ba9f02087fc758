#pragma once
// Perplexity as GPTQ/LQER/AMLQ report it (METHOD.md 9, REFERENCE.md):
// non-overlapping windows of seqlen ids from the start of the stream, the last
// partial window dropped, every token after a window's first predicted
// (seqlen-1 per window), NLL summed in double, ppl = exp(mean NLL).
#include <cstdint>
#include <span>

#include "backend/backend.h"
#include "model/model_weights.h"

namespace amlq {

struct PerplexityResult {
  int64_t windows = 0;
  int64_t scored_tokens = 0;
  double mean_nll = 0;
  double ppl = 0;
  double seconds = 0;
  double tokens_per_second = 0;  // forward tokens (windows * seqlen) per second
};

// max_windows: 0 = all; batch: windows per forward pass. Logs progress every few seconds.
PerplexityResult evaluate_perplexity(Backend& backend, const ModelWeights& weights, std::span<const int32_t> ids,
                                     int seqlen, int max_windows, int batch);

// Sum over rows t of -log softmax(logits.row(t))[targets[t]], in double.
double sum_token_nll(const MatrixF& logits, std::span<const int32_t> targets);

}  // namespace amlq
