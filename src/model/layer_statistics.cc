#include "model/layer_statistics.h"

#include "core/error.h"

namespace amlq {

int input_site_dim(const ModelConfig& config, InputSite site) {
  switch (site) {
    case InputSite::AttnIn:
    case InputSite::MlpIn: return config.hidden_size;
    case InputSite::AttnOut: return config.num_heads * config.head_dim;
    case InputSite::MlpOut: return config.intermediate_size;
  }
  AMLQ_FAIL(Internal, "unknown input site {}", static_cast<int>(site));
}

LayerStatistics::LayerStatistics(const ModelConfig& config, int samples_per_block) {
  for (int s = 0; s < kNumInputSites; ++s)
    per_site[s] = HessianAccumulator(input_site_dim(config, static_cast<InputSite>(s)), samples_per_block);
}

void LayerStatistics::finish() {
  for (auto& acc : per_site) acc.finish();
}

void accumulate_layer_statistics(Backend& backend, const LayerInputs& inputs, int64_t first_sample, int num_samples,
                                 LayerStatistics& stats) {
  for (int s = 0; s < kNumInputSites; ++s) {
    const auto site = static_cast<InputSite>(s);
    stats.site(site).add(backend, inputs.at(site), first_sample, num_samples);
  }
}

}  // namespace amlq
