#include "model/perplexity.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "model/forward.h"

namespace amlq {
namespace {

// Rows of logits materialized at once: bounds memory for large vocabularies.
constexpr int64_t kLogitBudget = int64_t{1} << 24;  // floats (64 MiB)
constexpr double kProgressInterval = 5.0;            // seconds

}  // namespace

double sum_token_nll(const MatrixF& logits, std::span<const int32_t> targets) {
  AMLQ_ASSERT(static_cast<size_t>(logits.rows()) == targets.size(), "{} logit rows for {} targets", logits.rows(),
              targets.size());
  double total = 0;
  for (Eigen::Index t = 0; t < logits.rows(); ++t) {
    const auto row = logits.row(t).array();
    const float m = row.maxCoeff();
    const double sum_exp = (row - m).exp().sum();
    total += static_cast<double>(m) + std::log(sum_exp) - static_cast<double>(row(targets[t]));
  }
  return total;
}

PerplexityResult evaluate_perplexity(Backend& backend, const ModelWeights& weights, std::span<const int32_t> ids,
                                     int seqlen, int max_windows, int batch) {
  AMLQ_REQUIRE(seqlen >= 2, "--seqlen {} is too short: perplexity needs at least 2 tokens per window", seqlen);
  AMLQ_REQUIRE(weights.config.max_position <= 0 || seqlen <= weights.config.max_position,
               "--seqlen {} exceeds the model's max_position_embeddings {}", seqlen, weights.config.max_position);
  AMLQ_ASSERT(batch > 0, "batch {}", batch);
  int64_t windows = static_cast<int64_t>(ids.size()) / seqlen;
  AMLQ_REQUIRE(windows > 0, "the dataset has {} tokens, fewer than one window of {}", ids.size(), seqlen);
  if (max_windows > 0) windows = std::min<int64_t>(windows, max_windows);

  const RopeTables rope = make_rope_tables(weights.config, seqlen);
  const int vocab = weights.config.vocab_size;
  const int chunk_rows = static_cast<int>(std::clamp<int64_t>(kLogitBudget / vocab, 1, seqlen - 1));

  Timer timer;
  double last_report = 0;
  double nll_sum = 0;
  int64_t scored = 0;
  MatrixF hidden, rows, logits;
  for (int64_t w0 = 0; w0 < windows; w0 += batch) {
    const int n = static_cast<int>(std::min<int64_t>(batch, windows - w0));
    const auto window_ids = ids.subspan(static_cast<size_t>(w0) * seqlen, static_cast<size_t>(n) * seqlen);
    hidden = embed(weights, window_ids);
    forward_layers(backend, weights, rope, hidden, n, seqlen);
    for (int b = 0; b < n; ++b) {
      // Position t predicts id t+1; the window's last position predicts nothing.
      for (int t0 = 0; t0 < seqlen - 1; t0 += chunk_rows) {
        const int count = std::min(chunk_rows, seqlen - 1 - t0);
        rows = hidden.middleRows(static_cast<Eigen::Index>(b) * seqlen + t0, count);
        final_logits(backend, weights, rows, logits);
        nll_sum += sum_token_nll(logits, window_ids.subspan(static_cast<size_t>(b) * seqlen + t0 + 1, count));
        scored += count;
      }
    }
    if (!std::isfinite(nll_sum)) AMLQ_FAIL(Numerical, "non-finite NLL in windows [{}, {})", w0, w0 + n);
    const double elapsed = timer.seconds();
    if (elapsed - last_report >= kProgressInterval && w0 + n < windows) {
      last_report = elapsed;
      AMLQ_LOG_INFO("[{}/{}] windows, ppl so far {:.4f}, {:.0f} tokens/s", w0 + n, windows,
                    std::exp(nll_sum / static_cast<double>(scored)),
                    static_cast<double>((w0 + n) * seqlen) / elapsed);
    }
  }

  PerplexityResult r;
  r.windows = windows;
  r.scored_tokens = scored;
  r.mean_nll = nll_sum / static_cast<double>(scored);
  r.ppl = std::exp(r.mean_nll);
  r.seconds = timer.seconds();
  r.tokens_per_second = static_cast<double>(windows * seqlen) / std::max(r.seconds, 1e-9);
  return r;
}

}  // namespace amlq
