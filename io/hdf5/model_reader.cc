// Reads and validates the quantized-model file (docs/FORMAT.md). Every problem
// becomes one Input error "<file>: <object>: <what is wrong>".
#include <cmath>
#include <filesystem>

#include "io/hdf5/format_names.h"
#include "io/hdf5/hdf5_objects.h"
#include "io/hdf5/quantized_model.h"

namespace amlq {

namespace {

using h5::Dataset;
using h5::Group;

std::string shape_text(const std::vector<hsize_t>& dims) { return fmt::format("[{}]", fmt::join(dims, ", ")); }

// Opens `rel` under `loc` after checking it exists and is of the expected kind.
hid_t open_object(hid_t loc, const std::string& rel, const std::string& where, H5I_type_t kind) {
  if (!h5::link_exists(loc, rel)) AMLQ_FAIL(Input, "{} is missing", where);
  const hid_t id = AMLQ_HDF5_ID(H5Oopen(loc, rel.c_str(), H5P_DEFAULT));
  if (H5Iget_type(id) != kind) {
    H5Oclose(id);
    AMLQ_FAIL(Input, "{} is not a {}", where, kind == H5I_GROUP ? "group" : "dataset");
  }
  return id;
}

Group group_at(hid_t loc, const std::string& rel, const std::string& where) {
  return Group(open_object(loc, rel, where, H5I_GROUP));
}

// A dataset of `expected` shape whose elements are of `type_class`.
Dataset dataset_at(hid_t loc, const std::string& rel, const std::string& where, const std::vector<hsize_t>& expected,
                   H5T_class_t type_class) {
  Dataset ds(open_object(loc, rel, where, H5I_DATASET));
  const auto dims = h5::dataset_dims(ds.get());
  if (dims != expected) AMLQ_FAIL(Input, "{} has shape {}, expected {}", where, shape_text(dims), shape_text(expected));
  if (h5::dataset_class(ds.get()) != type_class)
    AMLQ_FAIL(Input, "{} holds {} values, expected {}", where,
              h5::dataset_class(ds.get()) == H5T_FLOAT ? "floating-point" : "non-numeric",
              type_class == H5T_FLOAT ? "floating-point" : "integer");
  return ds;
}

template <typename T>
std::vector<T> read_all(const Dataset& ds, size_t n) {
  std::vector<T> values(n);
  if (n) h5::read_dataset_raw(ds.get(), h5::TypeOf<T>::mem(), values.data());
  return values;
}

// Reads a dataset of `expected` shape into `out` when loading tensors; checks it either way.
template <typename T>
void tensor_at(hid_t loc, const std::string& rel, const std::string& where, std::vector<hsize_t> expected, bool load,
               std::vector<T>& out) {
  const Dataset ds = dataset_at(loc, rel, where, expected, std::is_floating_point_v<T> ? H5T_FLOAT : H5T_INTEGER);
  const size_t n = h5::dataset_elements_in_file(ds.get(), where);  // == the product of `expected`
  if (load) out = read_all<T>(ds, n);
}

void require_attribute(hid_t obj, const std::string& name, const std::string& where) {
  if (!h5::has_attribute(obj, name)) AMLQ_FAIL(Input, "{}: attribute '{}' is missing", where, name);
}

template <typename T>
T number_attribute(hid_t obj, const std::string& name, const std::string& where) {
  require_attribute(obj, name, where);
  const H5T_class_t c = h5::attribute_class(obj, name);
  if ((c != H5T_INTEGER && c != H5T_FLOAT) || h5::attribute_size(obj, name) != 1)
    AMLQ_FAIL(Input, "{}: attribute '{}' is not a single number", where, name);
  return h5::read_attribute<T>(obj, name);
}

template <typename T>
std::vector<T> array_attribute(hid_t obj, const std::string& name, const std::string& where) {
  require_attribute(obj, name, where);
  const H5T_class_t c = h5::attribute_class(obj, name);
  if (c != H5T_INTEGER && c != H5T_FLOAT) AMLQ_FAIL(Input, "{}: attribute '{}' is not numeric", where, name);
  return h5::read_array_attribute<T>(obj, name);
}

std::string string_attribute(hid_t obj, const std::string& name, const std::string& where) {
  require_attribute(obj, name, where);
  return h5::read_string_attribute(obj, name);
}

int positive_attribute(hid_t obj, const std::string& name, const std::string& where) {
  const int64_t v = number_attribute<int64_t>(obj, name, where);
  if (v <= 0 || v > INT32_MAX) AMLQ_FAIL(Input, "{}: attribute '{}' = {} is not a positive size", where, name, v);
  return static_cast<int>(v);
}

QuantSpec read_spec(hid_t obj, const std::string& where) {
  const auto bits = array_attribute<int32_t>(obj, "spec_bits", where);
  const auto groups = array_attribute<int32_t>(obj, "spec_group", where);
  const auto fractions = array_attribute<double>(obj, "spec_fraction", where);
  if (bits.empty() || groups.size() != bits.size() || fractions.size() != bits.size())
    AMLQ_FAIL(Input, "{}: spec_bits, spec_group, spec_fraction must have the same non-zero length ({}, {}, {})", where,
              bits.size(), groups.size(), fractions.size());
  std::vector<QuantPart> parts;
  for (size_t i = 0; i < bits.size(); ++i) parts.push_back({bits[i], groups[i], fractions[i]});
  QuantSpec spec{.parts = std::move(parts)};
  spec.symmetric = number_attribute<int32_t>(obj, "symmetric", where) != 0;
  spec.act_order = number_attribute<int32_t>(obj, "act_order", where) != 0;
  spec.static_groups = number_attribute<int32_t>(obj, "static_groups", where) != 0;
  return spec;
}

QuantizedModelHeader read_header(hid_t file) {
  const std::string where = "root group";
  if (!h5::has_attribute(file, "format"))
    AMLQ_FAIL(Input, "not an amlq model file (the root attribute 'format' is missing)");
  const std::string format = h5::read_string_attribute(file, "format");
  if (format != "amlq")
    AMLQ_FAIL(Input, "not an amlq model file (root attribute 'format' is '{}', expected 'amlq')", format);
  QuantizedModelHeader h;
  h.format_version = number_attribute<uint32_t>(file, "format_version", where);
  if (h.format_version == 0 || h.format_version > packed::kFormatVersion)
    AMLQ_FAIL(Input, "format_version {} is not readable by this amlq (reads 1..{}); a newer amlq wrote it?",
              h.format_version, packed::kFormatVersion);
  h.tool_version = string_attribute(file, "tool_version", where);
  h.source_model = string_attribute(file, "source_model", where);
  h.config_json = string_attribute(file, "config_json", where);
  h.target_bpw = number_attribute<double>(file, "target_bpw", where);
  h.achieved_bpw = number_attribute<double>(file, "achieved_bpw", where);
  h.search_method = string_attribute(file, "search_method", where);
  h.calibration = string_attribute(file, "calibration", where);
  h.quantizer = string_attribute(file, "quantizer", where);
  h.lowrank_method = string_attribute(file, "lowrank_method", where);
  h.extra_json = string_attribute(file, "extra", where);
  return h;
}

PackedLinear read_linear_group(hid_t linears, const std::string& name, bool load) {
  const std::string where = "/linears/" + name;
  const Group g = group_at(linears, name, where);
  const hid_t gid = g.get();
  PackedLinear l;
  l.name = name;
  l.rows = positive_attribute(gid, "rows", where);
  l.cols = positive_attribute(gid, "cols", where);
  const auto rows = static_cast<hsize_t>(l.rows), cols = static_cast<hsize_t>(l.cols);
  l.spec = read_spec(gid, where);
  const int num_parts = positive_attribute(gid, "num_parts", where);
  l.rank = number_attribute<int32_t>(gid, "rank", where);
  if (l.rank < 0) AMLQ_FAIL(Input, "{}: attribute 'rank' = {} is negative", where, l.rank);
  const std::string method = string_attribute(gid, "lowrank_method", where);
  const auto parsed_method = h5::parse_file_lowrank_name(method);
  if (!parsed_method) AMLQ_FAIL(Input, "{}: unknown lowrank_method '{}'", where, method);
  l.lowrank = *parsed_method;
  const std::string format = string_attribute(gid, "factor_format", where);
  const auto parsed_format = h5::parse_file_factor_format(format);
  if (!parsed_format) AMLQ_FAIL(Input, "{}: unknown factor_format '{}'", where, format);
  l.factor_format = *parsed_format;
  l.eps = number_attribute<double>(gid, "eps", where);
  l.bpw = number_attribute<double>(gid, "bpw", where);

  if (h5::link_exists(gid, "perm")) {
    tensor_at(gid, "perm", where + "/perm", {cols}, load, l.perm);
    // The permutation indexes the dequantized matrix's columns: an entry out of
    // range would write outside it.
    std::vector<char> seen(l.perm.size(), 0);
    for (size_t j = 0; j < l.perm.size(); ++j) {
      const int32_t c = l.perm[j];
      if (c < 0 || c >= l.cols || seen[static_cast<size_t>(c)])
        AMLQ_FAIL(Input, "{}/perm is not a permutation of 0..{}: entry {} is {}", where, l.cols - 1, j, c);
      seen[static_cast<size_t>(c)] = 1;
    }
  }
  int next_col = 0;
  for (int p = 0; p < num_parts; ++p) {
    const std::string part_where = fmt::format("{}/parts/{}", where, p);
    const Group pg = group_at(gid, fmt::format("parts/{}", p), part_where);
    PackedPart part;
    part.col_begin = number_attribute<int32_t>(pg.get(), "col_begin", part_where);
    part.col_end = number_attribute<int32_t>(pg.get(), "col_end", part_where);
    part.bits = number_attribute<int32_t>(pg.get(), "bits", part_where);
    part.group = positive_attribute(pg.get(), "group", part_where);
    part.num_groups = positive_attribute(pg.get(), "num_groups", part_where);
    if (part.col_begin != next_col || part.col_end <= part.col_begin || part.col_end > l.cols)
      AMLQ_FAIL(Input, "{}: columns [{}, {}) do not continue the previous part (next column {} of {})", part_where,
                part.col_begin, part.col_end, next_col, l.cols);
    if (!packed::valid_bits(part.bits))
      AMLQ_FAIL(Input, "{}: bits = {} is outside {}..{}", part_where, part.bits, packed::kMinBits, packed::kMaxBits);
    next_col = part.col_end;
    const auto words = static_cast<hsize_t>(packed::words_per_row(part.col_end - part.col_begin, part.bits));
    const auto groups = static_cast<hsize_t>(part.num_groups);
    const auto zero_words = static_cast<hsize_t>(packed::words_per_row(part.num_groups, part.bits));
    tensor_at(pg.get(), "codes", part_where + "/codes", {rows, words}, load, part.codes);
    tensor_at(pg.get(), "scales", part_where + "/scales", {rows, groups}, load, part.scales);
    tensor_at(pg.get(), "zeros", part_where + "/zeros", {rows, zero_words}, load, part.zeros);
    l.parts.push_back(std::move(part));
  }
  if (next_col != l.cols) AMLQ_FAIL(Input, "{}: parts cover {} of {} columns", where, next_col, l.cols);

  if (l.rank > 0) {
    const auto k = static_cast<hsize_t>(l.rank);
    const std::string lr = where + "/lowrank";
    if (l.factor_format == FactorFormat::Fp16) {
      tensor_at(gid, "lowrank/A", lr + "/A", {rows, k}, load, l.a_fp16);
      tensor_at(gid, "lowrank/B", lr + "/B", {k, cols}, load, l.b_fp16);
    } else {
      tensor_at(gid, "lowrank/A", lr + "/A", {rows, k}, load, l.a_int8);
      tensor_at(gid, "lowrank/A_scales", lr + "/A_scales", {rows}, load, l.a_scales);
      tensor_at(gid, "lowrank/B", lr + "/B", {k, cols}, load, l.b_int8);
      tensor_at(gid, "lowrank/B_scales", lr + "/B_scales", {k}, load, l.b_scales);
    }
  }
  if (h5::link_exists(gid, "bias")) tensor_at(gid, "bias", where + "/bias", {rows}, load, l.bias);
  return l;
}

PassthroughTensor read_passthrough_dataset(hid_t group, const std::string& name, bool load) {
  const std::string where = "/passthrough/" + name;
  const Dataset ds(open_object(group, name, where, H5I_DATASET));
  const std::string dtype = string_attribute(ds.get(), "dtype", where);
  const auto parsed = h5::parse_file_dtype(dtype);
  if (!parsed) AMLQ_FAIL(Input, "{}: unknown dtype '{}'", where, dtype);
  PassthroughTensor t;
  t.name = name;
  t.dtype = *parsed;
  const h5::Datatype stored(AMLQ_HDF5_ID(H5Dget_type(ds.get())));
  const htri_t matches = H5Tequal(stored.get(), h5::passthrough_file_type(t.dtype));
  AMLQ_CHECK_HDF5(matches);
  if (!matches) AMLQ_FAIL(Input, "{}: stored element type does not match its dtype attribute '{}'", where, dtype);
  h5::dataset_elements_in_file(ds.get(), where);  // so numel() below cannot overflow
  for (hsize_t d : h5::dataset_dims(ds.get())) t.shape.push_back(static_cast<int64_t>(d));
  if (load) {
    t.data.resize(static_cast<size_t>(t.numel()) * dtype_size(t.dtype));
    if (!t.data.empty()) h5::read_dataset_raw(ds.get(), h5::passthrough_file_type(t.dtype), t.data.data());
  }
  return t;
}

// One column of a measurement table: a 1-D dataset of `length` elements (-1: any).
template <typename T>
std::vector<T> column(hid_t group, const std::string& group_where, const std::string& name, int64_t length) {
  const std::string where = group_where + "/" + name;
  const Dataset ds(open_object(group, name, where, H5I_DATASET));
  const auto dims = h5::dataset_dims(ds.get());
  if (dims.size() != 1 || (length >= 0 && dims[0] != static_cast<hsize_t>(length)))
    AMLQ_FAIL(Input, "{} has shape {}, expected [{}]", where, shape_text(dims), length);
  h5::dataset_elements_in_file(ds.get(), where);
  if constexpr (std::is_same_v<T, std::string>) {
    return h5::read_string_dataset(ds.get());
  } else {
    const H5T_class_t c = h5::dataset_class(ds.get());
    if (c != H5T_INTEGER && c != H5T_FLOAT) AMLQ_FAIL(Input, "{} is not numeric", where);
    return read_all<T>(ds, dims[0]);
  }
}

MeasurementTable read_measurements(hid_t file) {
  const Group m = group_at(file, "measurements", "/measurements");
  const std::string lw = "/measurements/layers", cw = "/measurements/candidates", pw = "/measurements/candidate_parts";
  const Group layers = group_at(m.get(), "layers", lw);
  const auto names = column<std::string>(layers.get(), lw, "name", -1);
  const auto n_layers = static_cast<int64_t>(names.size());
  const auto rows = column<int32_t>(layers.get(), lw, "rows", n_layers);
  const auto cols = column<int32_t>(layers.get(), lw, "cols", n_layers);
  // Optional: present when the loss sensitivities were measured.
  const bool sensitive = h5::link_exists(layers.get(), "alpha");
  const auto alpha = sensitive ? column<double>(layers.get(), lw, "alpha", n_layers)
                               : std::vector<double>(static_cast<size_t>(n_layers), 0.0);
  const auto alpha_linearity = sensitive ? column<double>(layers.get(), lw, "alpha_linearity", n_layers)
                                         : std::vector<double>(static_cast<size_t>(n_layers), 0.0);

  const Group candidates = group_at(m.get(), "candidates", cw);
  const auto layer = column<int32_t>(candidates.get(), cw, "layer", -1);
  const auto n = static_cast<int64_t>(layer.size());
  const auto spec = column<std::string>(candidates.get(), cw, "spec", n);
  const auto rank = column<int32_t>(candidates.get(), cw, "rank", n);
  const auto bpw = column<double>(candidates.get(), cw, "bpw", n);
  const auto eps = column<double>(candidates.get(), cw, "eps", n);
  // Optional: present when the candidates were measured on a sample of rows.
  const auto eps_stderr = h5::link_exists(candidates.get(), "eps_stderr")
                              ? column<double>(candidates.get(), cw, "eps_stderr", n)
                              : std::vector<double>(static_cast<size_t>(n), 0.0);
  const auto symmetric = column<uint8_t>(candidates.get(), cw, "symmetric", n);
  const auto act_order = column<uint8_t>(candidates.get(), cw, "act_order", n);
  const auto static_groups = column<uint8_t>(candidates.get(), cw, "static_groups", n);
  const auto num_parts = column<int32_t>(candidates.get(), cw, "num_parts", n);

  const Group parts = group_at(m.get(), "candidate_parts", pw);
  const auto bits = column<int32_t>(parts.get(), pw, "bits", -1);
  const auto n_parts = static_cast<int64_t>(bits.size());
  const auto group = column<int32_t>(parts.get(), pw, "group", n_parts);
  const auto fraction = column<double>(parts.get(), pw, "fraction", n_parts);

  MeasurementTable table(names.size());
  for (int64_t l = 0; l < n_layers; ++l) {
    if (!std::isfinite(alpha[l]) || alpha[l] < 0)
      AMLQ_FAIL(Input, "{}/alpha[{}] = {} is not a finite number >= 0", lw, l, alpha[l]);
    table[l] = {names[l], rows[l], cols[l], {}, alpha[l], alpha_linearity[l]};
  }
  int64_t next_part = 0;
  for (int64_t c = 0; c < n; ++c) {
    if (layer[c] < 0 || layer[c] >= n_layers || (c > 0 && layer[c] < layer[c - 1]))
      AMLQ_FAIL(Input, "{}/layer[{}] = {} is not a non-decreasing layer index below {}", cw, c, layer[c], n_layers);
    if (num_parts[c] <= 0 || next_part + num_parts[c] > n_parts)
      AMLQ_FAIL(Input, "{}/num_parts[{}] = {} overruns {} ({} rows)", cw, c, num_parts[c], pw, n_parts);
    std::vector<QuantPart> spec_parts;
    for (int i = 0; i < num_parts[c]; ++i, ++next_part)
      spec_parts.push_back({bits[next_part], group[next_part], fraction[next_part]});
    Candidate cand{.spec = QuantSpec{.parts = std::move(spec_parts)}};
    cand.spec.symmetric = symmetric[c] != 0;
    cand.spec.act_order = act_order[c] != 0;
    cand.spec.static_groups = static_groups[c] != 0;
    cand.rank = rank[c];
    cand.bpw = bpw[c];
    cand.eps = eps[c];
    cand.eps_stderr = eps_stderr[c];
    table[layer[c]].candidates.push_back(std::move(cand));
  }
  if (next_part != n_parts) AMLQ_FAIL(Input, "{} has {} rows, the candidates use {}", pw, n_parts, next_part);
  (void)spec;  // the labels are for people; the columns above are authoritative
  return table;
}

QuantizedModel read_model(hid_t file, bool load) {
  QuantizedModel model;
  model.header = read_header(file);
  const Group linears = group_at(file, "linears", "/linears");
  for (const auto& name : h5::link_names(linears.get()))
    model.linears.push_back(read_linear_group(linears.get(), name, load));
  const Group passthrough = group_at(file, "passthrough", "/passthrough");
  for (const auto& name : h5::link_names(passthrough.get()))
    model.passthrough.push_back(read_passthrough_dataset(passthrough.get(), name, load));
  model.measurements = read_measurements(file);
  return model;
}

// Runs `read` on the open file; every non-internal error names the file.
template <typename F>
auto with_file_errors(const std::string& path, F&& read) {
  try {
    return read();
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::Internal) throw;
    AMLQ_FAIL(Input, "{}: {}", path, e.what());
  }
}

h5::File open_model_file(const std::string& path) {
  h5::quiet_hdf5_errors();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) AMLQ_FAIL(Input, "{}: no such file", path);
  return with_file_errors(path, [&] {
    const htri_t is_hdf5 = H5Fis_hdf5(path.c_str());
    if (is_hdf5 <= 0) AMLQ_FAIL(Input, "not an HDF5 file");
    return h5::File(AMLQ_HDF5_ID(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT)));
  });
}

}  // namespace

QuantizedModel read_quantized_model(const std::string& path, bool load_tensors) {
  const h5::File file = open_model_file(path);
  return with_file_errors(path, [&] { return read_model(file.get(), load_tensors); });
}

struct QuantizedModelFile::Handle {
  h5::File file;
};

QuantizedModelFile::QuantizedModelFile(const std::string& path)
    : path_(path), handle_(std::make_unique<Handle>(Handle{open_model_file(path)})) {
  layout_ = with_file_errors(path_, [&] { return read_model(handle_->file.get(), false); });
}

QuantizedModelFile::~QuantizedModelFile() = default;

PackedLinear QuantizedModelFile::read_linear(size_t index) const {
  AMLQ_ASSERT(index < layout_.linears.size(), "linear {} of {}", index, layout_.linears.size());
  return with_file_errors(path_, [&] {
    const Group linears = group_at(handle_->file.get(), "linears", "/linears");
    return read_linear_group(linears.get(), layout_.linears[index].name, true);
  });
}

PassthroughTensor QuantizedModelFile::read_passthrough(size_t index) const {
  AMLQ_ASSERT(index < layout_.passthrough.size(), "passthrough tensor {} of {}", index, layout_.passthrough.size());
  return with_file_errors(path_, [&] {
    const Group group = group_at(handle_->file.get(), "passthrough", "/passthrough");
    return read_passthrough_dataset(group.get(), layout_.passthrough[index].name, true);
  });
}

PackedLinear read_quantized_linear(const std::string& path, const std::string& name) {
  const h5::File file = open_model_file(path);
  return with_file_errors(path, [&] {
    read_header(file.get());
    const Group linears = group_at(file.get(), "linears", "/linears");
    return read_linear_group(linears.get(), name, true);
  });
}

}  // namespace amlq
