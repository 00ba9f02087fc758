#pragma once
// The quantized-model writer in steps, so a distributed run can use it with
// parallel HDF5: every rank calls create_model_file and create_layout with the
// same arguments (all metadata: groups, datasets, attributes, the measurement
// table), then each rank calls write_linear / write_passthrough for the tensors
// it owns (raw data only). Datasets are allocated at creation, so the bytes of
// the file do not depend on which rank writes what, or in which order.
// write_quantized_model (quantized_model.h) is the serial composition of these.
#include <string>
#include <vector>

#include "io/hdf5/hdf5_check.h"
#include "io/hdf5/quantized_model.h"

namespace amlq::h5 {

struct PartLayout {
  int col_begin = 0;
  int col_end = 0;
  int bits = 4;
  int group = 128;
  int num_groups = 0;
};

// Everything about a linear except its tensor data.
struct LinearLayout {
  std::string name;
  int rows = 0;
  int cols = 0;
  QuantSpec spec;
  bool has_perm = false;
  std::vector<PartLayout> parts;
  LowRankMethod lowrank = LowRankMethod::None;
  FactorFormat factor_format = FactorFormat::Fp16;
  int rank = 0;
  bool has_bias = false;
  double eps = 0;
  double bpw = 0;
};

struct PassthroughLayout {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
};

struct ModelLayout {
  QuantizedModelHeader header;
  std::vector<LinearLayout> linears;
  std::vector<PassthroughLayout> passthrough;
  MeasurementTable measurements;  // small; written with the metadata
};

// Layouts of in-memory tensors; throw Internal naming the linear/tensor when
// the arrays disagree with the shapes (a bug in whoever built them).
LinearLayout layout_of(const PackedLinear& linear);
PassthroughLayout layout_of(const PassthroughTensor& tensor);
ModelLayout layout_of(const QuantizedModel& model);

// Creates (truncates) an HDF5 file with reproducible creation properties.
// `access` is a file-access property list: H5P_DEFAULT for serial I/O, one with
// H5Pset_fapl_mpio for parallel HDF5.
File create_model_file(const std::string& path, hid_t access = H5P_DEFAULT);

// Writes the root attributes, creates every group and dataset (with their
// attributes) and writes the measurement table. Collective under MPI.
void create_layout(hid_t file, const ModelLayout& layout);

// Fill the datasets create_layout made for one tensor; `transfer` is a
// dataset-transfer property list (H5P_DEFAULT, or an MPI-IO one).
void write_linear(hid_t file, const PackedLinear& linear, hid_t transfer = H5P_DEFAULT);
void write_passthrough(hid_t file, const PassthroughTensor& tensor, hid_t transfer = H5P_DEFAULT);

}  // namespace amlq::h5
