#include "pipeline/calibration_stats.h"

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "io/hdf5/hdf5_objects.h"
#include "io/hdf5/model_writer.h"

namespace amlq {

namespace {
constexpr const char* kKind = "amlq-calibration";

std::string layer_group_name(int layer) { return "layer_" + std::to_string(layer); }

}  // namespace

void write_calibration_stats(const std::string& path, const CalibrationStats& stats) {
  h5::quiet_hdf5_errors();
  AtomicOutput out(path);
  {
    h5::File file = h5::create_model_file(out.temp_path());
    h5::write_string_attribute(file.get(), "format", kKind);
    h5::write_string_attribute(file.get(), "input_hash", stats.input_hash);
    h5::write_string_attribute(file.get(), "description", stats.description);
    for (const auto& layer : stats.layers) {
      h5::Group group = h5::create_group(file.get(), layer_group_name(layer.layer));
      h5::write_attribute<int32_t>(group.get(), "layer", layer.layer);
      for (int s = 0; s < 4; ++s) {
        const auto& site = layer.sites[static_cast<size_t>(s)];
        h5::Group sg = h5::create_group(group.get(), input_site_name(static_cast<InputSite>(s)));
        h5::write_attribute<int64_t>(sg.get(), "tokens", site.tokens);
        const hsize_t n = static_cast<hsize_t>(site.hessian.rows());
        const hsize_t dims2[2] = {n, n};
        h5::Dataset h = h5::create_dataset(sg.get(), "hessian", H5T_IEEE_F64LE, dims2);
        h5::write_dataset_raw(h.get(), H5T_NATIVE_DOUBLE, site.hessian.data());
        const hsize_t dims1[1] = {static_cast<hsize_t>(site.act_scale.size())};
        h5::Dataset a = h5::create_dataset(sg.get(), "act_scale", H5T_IEEE_F64LE, dims1);
        h5::write_dataset_raw(a.get(), H5T_NATIVE_DOUBLE, site.act_scale.data());
      }
    }
    file.close();
  }
  out.commit();
}

namespace {

// Errors name the object; the caller adds the file.
CalibrationStats read_stats(hid_t file) {
  if (!h5::has_attribute(file, "format") || h5::read_string_attribute(file, "format") != kKind)
    AMLQ_FAIL(Input, "not an amlq calibration checkpoint");
  CalibrationStats stats;
  stats.input_hash = h5::read_string_attribute(file, "input_hash");
  stats.description = h5::read_string_attribute(file, "description");
  h5::Group root = h5::open_group(file, "/");
  for (const auto& name : h5::link_names(root.get())) {
    h5::Group group = h5::open_group(root.get(), name);
    LayerCalibration layer;
    layer.layer = h5::read_attribute<int32_t>(group.get(), "layer");
    for (int s = 0; s < 4; ++s) {
      const auto site_name = input_site_name(static_cast<InputSite>(s));
      const std::string where = fmt::format("{}/{}", name, site_name);
      if (!h5::link_exists(group.get(), site_name)) AMLQ_FAIL(Input, "{} is missing", where);
      h5::Group sg = h5::open_group(group.get(), site_name);
      auto& site = layer.sites[static_cast<size_t>(s)];
      site.tokens = h5::read_attribute<int64_t>(sg.get(), "tokens");
      h5::Dataset h = h5::open_dataset(sg.get(), "hessian");
      const auto dims = h5::dataset_dims(h.get());
      if (dims.size() != 2 || dims[0] != dims[1]) AMLQ_FAIL(Input, "{}/hessian is not square", where);
      if (h5::dataset_class(h.get()) != H5T_FLOAT) AMLQ_FAIL(Input, "{}/hessian is not floating-point", where);
      h5::dataset_elements_in_file(h.get(), where + "/hessian");
      site.hessian.resize(static_cast<Eigen::Index>(dims[0]), static_cast<Eigen::Index>(dims[1]));
      if (site.hessian.size() > 0) h5::read_dataset_raw(h.get(), H5T_NATIVE_DOUBLE, site.hessian.data());
      h5::Dataset a = h5::open_dataset(sg.get(), "act_scale");
      const auto adims = h5::dataset_dims(a.get());
      if (adims.size() != 1 || adims[0] != dims[0])
        AMLQ_FAIL(Input, "{}/act_scale does not match the Hessian", where);
      if (h5::dataset_class(a.get()) != H5T_FLOAT) AMLQ_FAIL(Input, "{}/act_scale is not floating-point", where);
      site.act_scale.resize(static_cast<Eigen::Index>(adims[0]));
      if (site.act_scale.size() > 0) h5::read_dataset_raw(a.get(), H5T_NATIVE_DOUBLE, site.act_scale.data());
    }
    stats.layers.push_back(std::move(layer));
  }
  std::sort(stats.layers.begin(), stats.layers.end(),
            [](const LayerCalibration& a, const LayerCalibration& b) { return a.layer < b.layer; });
  return stats;
}

}  // namespace

CalibrationStats read_calibration_stats(const std::string& path) {
  h5::quiet_hdf5_errors();
  if (!std::filesystem::exists(path)) AMLQ_FAIL(Input, "{}: calibration checkpoint does not exist", path);
  try {
    const h5::File file(AMLQ_HDF5_ID(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT)));
    return read_stats(file.get());
  } catch (const Error& e) {
    // HDF5 failures on a damaged file are failures of the input, not of an output.
    if (e.kind() == ErrorKind::Internal) throw;
    AMLQ_FAIL(Input, "{}: {}", path, e.what());
  }
}

std::string read_checkpoint_hash(const std::string& path) {
  if (!std::filesystem::exists(path)) return "";
  h5::quiet_hdf5_errors();
  try {
    h5::File file(AMLQ_HDF5_ID(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT)));
    if (!h5::has_attribute(file.get(), "input_hash")) return "";
    return h5::read_string_attribute(file.get(), "input_hash");
  } catch (const Error&) {
    return "";
  }
}

}  // namespace amlq
