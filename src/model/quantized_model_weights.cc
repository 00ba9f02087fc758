// Evaluation of amlq .h5 models: wired to io/hdf5 once the reader exists.
#include "core/error.h"
#include "model/model_weights.h"

namespace amlq {

ModelWeights load_quantized_model_weights(const std::string& h5_path) {
  AMLQ_FAIL(Usage, "{}: evaluating quantized .h5 models is not available yet", h5_path);
}

}  // namespace amlq
