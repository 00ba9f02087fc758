#pragma once
// Re-running a few layers of a finished amlq model at another configuration,
// for exporters whose format cannot express the stored one. Work directories
// do not keep Hessians, so the statistics are regenerated: the source model and
// the calibration options recorded in the file (extra.calibration) give the same
// FP statistics the original (non-sequential) run had, then the layers are
// quantized with pack_linear_choice (pipeline/stages.h) like the pack stage does.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "io/hdf5/quantized_model.h"
#include "search/measurement.h"

namespace amlq {

// The calibration options a quantize run records in the header's extra JSON
// ("calibration" and "gptq" objects, pipeline/quantize_job.cc).
struct CalibrationRecord {
  std::string data;       // calibration data path as given to quantize
  std::string data_hash;  // hash_data_file(data) at quantization time
  int num_samples = 0;
  int seqlen = 0;
  uint64_t seed = 0;
  bool random_offsets = true;
  int batch = 8;
  int samples_per_block = 8;
  double damp = 0.01;
  int block_size = 128;
};
// Input error naming `origin` when the extra JSON has no calibration record.
CalibrationRecord read_calibration_record(const std::string& extra_json, const std::string& origin);

struct RequantizeTarget {
  size_t index = 0;   // into file.layout().linears
  Candidate choice;   // the configuration to quantize it with
};

struct RequantizeSources {
  std::string model_dir;  // source checkpoint (default: the header's source_model)
  std::string calib;      // calibration data (default: as recorded)
};

// Quantizes every target with its choice from regenerated statistics; returns
// the packed layers in target order (bias and factors included, eps measured).
// `accept(layer)` may refuse a result, which is then redone once with a
// symmetric spec (whose zero points are never 0). Input errors name the file
// when the source model or the calibration data are missing or have changed.
std::vector<PackedLinear> requantize_linears(Backend& backend, const QuantizedModelFile& file,
                                             const std::vector<RequantizeTarget>& targets,
                                             const RequantizeSources& sources,
                                             const std::function<bool(const PackedLinear&)>& accept);

}  // namespace amlq
