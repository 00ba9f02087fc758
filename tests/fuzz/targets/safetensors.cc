// A safetensors file (header + data) as SafetensorsFile::open would parse it,
// then every tensor read the way the pipeline reads weights.
#include "io/safetensors.h"
#include "tests/fuzz/fuzz_target.h"

namespace amlq {

AMLQ_FUZZ_TARGET(safetensors, ErrorKind::Input) {
  const auto bytes = std::as_bytes(input);
  std::vector<std::byte> image(bytes.begin(), bytes.end());
  const auto file = SafetensorsFile::from_bytes(std::move(image), "fuzz.safetensors");
  for (const auto& entry : file->tensors()) {
    const std::string& name = entry.first;  // (clang 14 lambdas cannot capture structured bindings)
    const TensorInfo& info = entry.second;
    AMLQ_FUZZ_CHECK(file->raw(name).size() == info.nbytes(), "tensor {}", name);
    fuzz::tolerate(ErrorKind::Input, [&] {
      const TensorF32 t = file->read_f32(name);
      AMLQ_FUZZ_CHECK(static_cast<int64_t>(t.data.size()) == info.numel(), "tensor {}", name);
      AMLQ_FUZZ_CHECK(t.data.empty() || t.rows() * t.cols() == info.numel(), "tensor {}", name);
    });
  }
}

}  // namespace amlq
