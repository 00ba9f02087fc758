#include "pipeline/plan_validation.h"

#include <algorithm>
#include <span>

#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "model/forward.h"
#include "model/model_weights.h"
#include "model/rope.h"
#include "pipeline/distributed.h"
#include "pipeline/sensitivity.h"

namespace amlq {
namespace {

// Stage-to-stage messages of this pass (clear of the other passes' tag ranges).
constexpr int kValidationTag = 16500;

}  // namespace

ValidationResult validation_pass(PassContext& ctx, const std::vector<WorkDir>& candidates,
                                 const std::vector<std::vector<int32_t>>& windows) {
  const Topology& topo = ctx.topo;
  const int streams = static_cast<int>(candidates.size()) + 1;  // 0: FP, k + 1: candidate k
  const int last_rank = topo.rank_of(0, topo.stages - 1);
  std::vector<double> raw(static_cast<size_t>(streams), 0.0);
  if (topo.replica == 0) {
    Timer timer;
    const int count = static_cast<int>(windows.size());
    const int seqlen = ctx.options.validation_seqlen();
    const LayerBlock mine = topo.my_layers();
    const int prev = topo.first_stage() ? -1 : topo.rank_of(0, topo.stage - 1);
    const int next = topo.last_stage() ? -1 : topo.rank_of(0, topo.stage + 1);
    std::vector<MatrixF> hidden(static_cast<size_t>(streams));
    if (prev < 0) {
      std::vector<int32_t> ids;
      for (const auto& w : windows) ids.insert(ids.end(), w.begin(), w.end());
      hidden[0] = embed_from_checkpoint(ctx.checkpoint, ctx.config, ids);
      for (int s = 1; s < streams; ++s) hidden[static_cast<size_t>(s)] = hidden[0];
    } else {
      for (auto& h : hidden) h = recv_matrix(ctx.world, prev, kValidationTag);
    }
    const int rows = static_cast<int>(hidden[0].rows());
    AMLQ_ASSERT(rows % seqlen == 0, "validation: {} rows are not whole windows of {}", rows, seqlen);
    const RopeTables rope = make_rope_tables(ctx.config, seqlen);
    // --batch windows per forward call, which bounds the forward buffers.
    const int per_call = std::max(1, ctx.options.batch);
    MatrixF part;
    auto forward = [&](const DecoderLayerWeights& weights, MatrixF& h) {
      for (int w = 0; w < rows / seqlen; w += per_call) {
        const int n = std::min(per_call, rows / seqlen - w);
        part = h.middleRows(static_cast<Eigen::Index>(w) * seqlen, static_cast<Eigen::Index>(n) * seqlen);
        decoder_layer_forward(ctx.backend, ctx.config, weights, rope, part, n, seqlen, nullptr);
        h.middleRows(static_cast<Eigen::Index>(w) * seqlen, static_cast<Eigen::Index>(n) * seqlen) = part;
      }
    };
    for (int layer = mine.first; layer < mine.end; ++layer) {
      const DecoderLayerWeights fp = load_decoder_layer(ctx.checkpoint, ctx.config, layer);
      forward(fp, hidden[0]);
      for (int k = 0; k + 1 < streams; ++k) {
        DecoderLayerWeights quantized = fp;
        replace_with_packed(quantized, read_pack_file(candidates[static_cast<size_t>(k)], ctx.config, layer));
        forward(quantized, hidden[static_cast<size_t>(k + 1)]);
      }
      AMLQ_LOG_DEBUG("validation: layer {} forwarded ({} candidates)", layer, streams - 1);
    }
    if (next >= 0) {
      for (const auto& h : hidden) send_matrix(ctx.world, h, next, kValidationTag);
    } else {
      AMLQ_ASSERT(count * seqlen == rows, "validation: the last stage has {} windows for {} rows", count, rows);
      const ModelWeights head = load_model_weights(ctx.checkpoint, ctx.config, mine.end, mine.end, false, true);
      for (int s = 0; s < streams; ++s)
        raw[static_cast<size_t>(s)] = block_nll(ctx, head, hidden[static_cast<size_t>(s)], 1, windows).front();
      AMLQ_LOG_INFO("validation: {} candidate plan(s) and the FP model on {} held-out window(s) of {} tokens ({:.1f}s)",
                    streams - 1, count, seqlen, timer.seconds());
    }
  }
  release_forward_buffers();
  ctx.world.broadcast(std::as_writable_bytes(std::span(raw)), last_rank);
  ValidationResult out;
  out.fp_nll = raw.front();
  out.nll.assign(raw.begin() + 1, raw.end());
  return out;
}

}  // namespace amlq
