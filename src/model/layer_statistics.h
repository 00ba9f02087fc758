#pragma once
// Calibration statistics of one decoder layer: one HessianAccumulator per input
// site (q/k/v share AttnIn, gate/up share MlpIn), fed from the forward hooks.
#include <array>
#include <cstdint>

#include "backend/backend.h"
#include "io/model_config.h"
#include "model/forward.h"
#include "model/hessian_accumulator.h"

namespace amlq {

inline constexpr int kNumInputSites = 4;

// Input features of a site: hidden (AttnIn, MlpIn), heads*head_dim (AttnOut), intermediate (MlpOut).
int input_site_dim(const ModelConfig& config, InputSite site);

struct LayerStatistics {
  std::array<HessianAccumulator, kNumInputSites> per_site;  // indexed by static_cast<int>(InputSite)

  LayerStatistics() = default;
  LayerStatistics(const ModelConfig& config, int samples_per_block);
  HessianAccumulator& site(InputSite s) { return per_site[static_cast<size_t>(s)]; }
  const HessianAccumulator& site(InputSite s) const { return per_site[static_cast<size_t>(s)]; }
  // Closes every accumulator's open block; call once all samples are in, before hessian().
  void finish();
};

// Adds the captured inputs of `num_samples` consecutive samples (global indices
// first_sample...) to every site's accumulator.
void accumulate_layer_statistics(Backend& backend, const LayerInputs& inputs, int64_t first_sample, int num_samples,
                                 LayerStatistics& stats);

}  // namespace amlq
