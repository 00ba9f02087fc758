#include "model/generate.h"

#include "core/error.h"
#include "model/forward.h"

namespace amlq {

std::vector<int32_t> greedy_generate(Backend& backend, const ModelWeights& weights, std::vector<int32_t> ids,
                                     int new_tokens, bool stop_at_eos) {
  AMLQ_REQUIRE(!ids.empty(), "the prompt encodes to no tokens");
  const int limit = weights.config.max_position > 0 ? weights.config.max_position : 1 << 30;
  MatrixF hidden, last, logits;
  for (int step = 0; step < new_tokens && static_cast<int>(ids.size()) < limit; ++step) {
    const int seqlen = static_cast<int>(ids.size());
    hidden = embed(weights, ids);
    forward_layers(backend, weights, make_rope_tables(weights.config, seqlen), hidden, 1, seqlen);
    last = hidden.bottomRows(1);
    final_logits(backend, weights, last, logits);
    Eigen::Index next = 0;
    logits.row(0).maxCoeff(&next);
    ids.push_back(static_cast<int32_t>(next));
    if (stop_at_eos && next == weights.config.eos_token_id) break;
  }
  return ids;
}

}  // namespace amlq
