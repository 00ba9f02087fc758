#pragma once
// The amlq quantized-model file: one HDF5 file holding every quantized linear
// (packed codes, fp16 scales, packed zeros, permutation, low-rank factors, bias),
// the tensors kept as they were (embeddings, norms, lm_head), and the
// measurement table the search used. docs/FORMAT.md describes the layout for
// readers without amlq (h5py, h5dump).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/dtype.h"
#include "quant/packed_format.h"
#include "quant/packed_linear.h"
#include "search/measurement.h"

namespace amlq {

// A tensor stored unquantized, in its source dtype and shape (row-major bytes).
struct PassthroughTensor {
  std::string name;  // "model.embed_tokens.weight"
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<std::byte> data;  // empty when read with load_tensors = false
  int64_t numel() const;
  bool operator==(const PassthroughTensor&) const = default;
};

struct QuantizedModelHeader {
  uint32_t format_version = packed::kFormatVersion;  // the writer always writes kFormatVersion
  std::string tool_version;                          // amlq version that wrote the file (empty: this build's)
  std::string source_model;                          // path of the checkpoint that was quantized
  std::string config_json;                           // the model's config.json, verbatim
  std::string search_method;                         // "amlq-minmax", "min-sum", "uniform", ...
  std::string calibration;                           // e.g. "wikitext2 train, 128 x 2048 tokens, seed 0"
  std::string quantizer;                             // "gptq", "rtn"
  std::string lowrank_method;                        // "none", "svd", "l2qer", "whiten"
  std::string extra_json;                            // free-form JSON ("" or "{...}")
  double target_bpw = 0;
  double achieved_bpw = 0;
  bool operator==(const QuantizedModelHeader&) const = default;
};

struct QuantizedModel {
  QuantizedModelHeader header;
  std::vector<PackedLinear> linears;  // file order = this order
  std::vector<PassthroughTensor> passthrough;
  MeasurementTable measurements;
};

// Writes `model` to `path` atomically (temporary name, renamed when complete).
// Throws Output naming the file if it cannot be written, Internal if the model
// is inconsistent (e.g. a codes array of the wrong length); no file is left behind.
void write_quantized_model(const std::string& path, const QuantizedModel& model);

// Reads and validates a file written by write_quantized_model. With
// load_tensors = false only the header, names, shapes, attributes and the
// measurement table are read (codes, scales, zeros, perm, factors, bias and
// passthrough data stay empty). Throws Input naming the file and object on a
// missing file, a non-HDF5 or non-amlq file, a newer format_version, a missing
// object or a shape that disagrees with the attributes.
QuantizedModel read_quantized_model(const std::string& path, bool load_tensors = true);

// One linear (with its tensors) of such a file, validated as read_quantized_model does.
PackedLinear read_quantized_linear(const std::string& path, const std::string& name);

// The same file read one tensor at a time, for exporters that must not hold the
// whole model: opening validates everything read_quantized_model(path, false)
// does; the read_* calls load one linear or passthrough tensor (errors as above).
class QuantizedModelFile {
 public:
  explicit QuantizedModelFile(const std::string& path);
  ~QuantizedModelFile();
  QuantizedModelFile(const QuantizedModelFile&) = delete;
  QuantizedModelFile& operator=(const QuantizedModelFile&) = delete;

  const std::string& path() const { return path_; }
  // Header, every linear's and passthrough tensor's attributes and shape, and
  // the measurement table; tensor data empty.
  const QuantizedModel& layout() const { return layout_; }
  PackedLinear read_linear(size_t index) const;             // index into layout().linears
  PassthroughTensor read_passthrough(size_t index) const;   // index into layout().passthrough

 private:
  struct Handle;
  std::string path_;
  std::unique_ptr<Handle> handle_;
  QuantizedModel layout_;
};

}  // namespace amlq
