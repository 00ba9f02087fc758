// model.safetensors.index.json: the tensor -> shard map of a sharded checkpoint.
#include "io/safetensors.h"
#include "tests/fuzz/fuzz_target.h"

namespace amlq {

AMLQ_FUZZ_TARGET(safetensors_index, ErrorKind::Input) {
  for (const auto& [tensor, shard] : parse_safetensors_index(fuzz::text(input), "model.safetensors.index.json"))
    AMLQ_FUZZ_CHECK(!shard.empty() && shard.front() != '/', "shard '{}' of tensor '{}'", shard, tensor);
}

}  // namespace amlq
