#pragma once
// The calibrate stage's product: per decoder layer and input site, the Hessian
// and the activation scale, saved as an HDF5 checkpoint so that measure can
// resume without re-running the model.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/matrix.h"
#include "io/model_config.h"

namespace amlq {

struct SiteStatistics {
  MatrixD hessian;    // (2/N) sum x x^T
  VectorD act_scale;  // mean |x|
  int64_t tokens = 0;
};

struct LayerCalibration {
  int layer = 0;
  std::array<SiteStatistics, 4> sites;  // indexed by InputSite
  const SiteStatistics& site(InputSite s) const { return sites[static_cast<size_t>(s)]; }
};

struct CalibrationStats {
  std::string input_hash;  // of model + data + options that produced it
  std::string description;  // calibration set, for the report
  std::vector<LayerCalibration> layers;  // ascending layer index
};

void write_calibration_stats(const std::string& path, const CalibrationStats& stats);
// Throws Input naming the file when unreadable or malformed.
CalibrationStats read_calibration_stats(const std::string& path);
// The input hash recorded in a checkpoint, or "" when the file is absent or unreadable.
std::string read_checkpoint_hash(const std::string& path);

}  // namespace amlq
