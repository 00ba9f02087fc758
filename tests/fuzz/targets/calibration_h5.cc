// The calibrate stage's statistics file (<work>/calib/layer_NNNNN.h5, written with
// --keep-work and read by read_calibration_stats): structured edits of a real one
// (hdf5_edits.h), then the reader, which must reject every defect as Input.
#include "pipeline/calibration_stats.h"
#include "tests/fuzz/hdf5_edits.h"

namespace amlq {

AMLQ_FUZZ_TARGET(calibration_h5, ErrorKind::Input) {
  static const auto base = fuzz::read_data_file("calib_layer_00000.h5");
  const std::string& path = fuzz::write_scratch(".h5", fuzz::apply_hdf5_edits(base, input));
  const CalibrationStats stats = read_calibration_stats(path);
  for (const auto& layer : stats.layers)
    for (const auto& site : layer.sites)
      AMLQ_FUZZ_CHECK(site.act_scale.size() == site.hessian.rows() && site.hessian.rows() == site.hessian.cols(),
                      "layer {}: Hessian {} x {}, act_scale {}", layer.layer, site.hessian.rows(),
                      site.hessian.cols(), site.act_scale.size());
}

}  // namespace amlq
