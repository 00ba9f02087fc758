#pragma once
// Hashes of a stage's inputs, recorded in its output so --resume can tell
// whether a checkpoint still matches the request.
#include <string>

#include "io/model_config.h"
#include "io/safetensors.h"

namespace amlq {

// config.json, the tensor index (names, dtypes, shapes, offsets) and each shard's
// size plus its first and last MiB: cheap for 70B checkpoints, and it changes
// whenever the weights are replaced by another file (identical headers and
// sizes with edits only in the middle of a shard go unnoticed: documented).
std::string hash_model(const ModelConfig& config, const Checkpoint& checkpoint);
// The whole file (calibration and evaluation sets are small).
std::string hash_data_file(const std::string& path);

}  // namespace amlq
