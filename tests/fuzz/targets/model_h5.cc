// The quantized-model file (.h5) through every read path amlq has: inspect
// (metadata), eval/generate (load_quantized_model_weights + the CPU dequant
// kernel), --resume (header-only read). The input is an edit script applied to a
// real amlq file (hdf5_edits.h): hostile content in a well-formed HDF5 file
// (shapes, attributes, indices, dtypes), which amlq's reader must validate.
// Byte-level damage of the HDF5 structure itself is libhdf5's parser, which
// is not robust against it (1.10) and not ours to fix; amlq's own checkpoints
// are sealed with a checksum (pipeline/json_checkpoint.h) so that resume never
// hands damaged bytes to libhdf5.
#include "backend/backend.h"
#include "io/hdf5/model_summary.h"
#include "io/hdf5/quantized_model.h"
#include "model/model_weights.h"
#include "tests/fuzz/hdf5_edits.h"

namespace amlq {
namespace {

// The real amlq files the edit scripts start from (tests/fuzz/make_seeds.sh):
// llama with fp16 low-rank factors, qwen2 with biases and int8 factors.
const std::vector<std::byte>& base_model(uint8_t selector) {
  static const std::vector<std::byte> bases[] = {fuzz::read_data_file("model.h5"),
                                                 fuzz::read_data_file("model_int8.h5")};
  return bases[selector % 2];
}

// Everything a user command does with the file at `path`.
void read_every_way(const std::string& path) {
  (void)summarize_quantized_model(path);
  (void)read_quantized_model(path, /*load_tensors=*/false);
  const ModelWeights w = load_quantized_model_weights(path);
  static const auto backend = make_backend("cpu");
  for (const auto& layer : w.layers) {
    for (const auto& linear : layer.linears) {
      const PackedLinear& l = *linear.packed;
      const MatrixF x = MatrixF::Ones(2, l.cols);
      MatrixF y;
      backend->dequant_linear(x, l, y);
      AMLQ_FUZZ_CHECK(y.rows() == 2 && y.cols() == l.rows, "{}: output {} x {}", l.name, y.rows(), y.cols());
    }
  }
}

}  // namespace

// Byte 0 picks the base file, the rest is the edit script.
AMLQ_FUZZ_TARGET(model_h5, ErrorKind::Input) {
  if (input.empty()) return;
  const auto image = fuzz::apply_hdf5_edits(base_model(input[0]), input.subspan(1));
  read_every_way(fuzz::write_scratch(".h5", image));
}

}  // namespace amlq
