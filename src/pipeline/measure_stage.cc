#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "model/model_weights.h"
#include "pipeline/stages.h"

namespace amlq {

std::vector<LinearTask> linear_tasks(const ModelConfig& config, LayerBlock layers) {
  std::vector<LinearTask> tasks;
  const auto linears = decoder_linears(config);
  for (int layer = layers.first; layer < layers.end; ++layer)
    for (size_t j = 0; j < linears.size(); ++j)
      tasks.push_back({layer, static_cast<int>(j), layer_tensor_name(layer, linears[j].name)});
  return tasks;
}

MatrixF read_linear_weight(const Checkpoint& checkpoint, const LinearSpec& spec, int layer) {
  const std::string name = linear_weight_name(layer, spec.name);
  const TensorF32 t = checkpoint.read_f32(name);
  if (t.shape != std::vector<int64_t>{spec.rows, spec.cols})
    AMLQ_FAIL(Input, "{}: tensor '{}' has shape [{}], config.json implies [{}, {}]", checkpoint.file_of(name), name,
              fmt::join(t.shape, ", "), spec.rows, spec.cols);
  return Eigen::Map<const MatrixF>(t.data.data(), spec.rows, spec.cols);
}

}  // namespace amlq
