#include "io/hdf5/model_writer.h"

#include <bit>
#include <set>

#include "core/atomic_file.h"
#include "io/hdf5/format_names.h"
#include "io/hdf5/hdf5_objects.h"

namespace amlq::h5 {

static_assert(std::endian::native == std::endian::little,
              "tensor bytes are written as little-endian file types without conversion");

namespace {

constexpr const char* kFloat16 = "float16";

hsize_t as_hsize(int64_t n) { return static_cast<hsize_t>(n); }

void require_valid_name(const std::string& name, const char* what) {
  if (name.empty() || name == "." || name.find('/') != std::string::npos)
    AMLQ_FAIL(Internal, "{} name '{}' cannot be an HDF5 link name (empty, '.' or contains '/')", what, name);
}

// Fails (Internal: the producer built an inconsistent object) unless n == expected.
void require_size(size_t n, int64_t expected, const std::string& linear, const char* array) {
  if (static_cast<int64_t>(n) != expected)
    AMLQ_FAIL(Internal, "linear '{}': {} has {} elements, its shape implies {}", linear, array, n, expected);
}

template <typename T>
Dataset create_typed(hid_t loc, const std::string& name, std::initializer_list<int64_t> dims) {
  std::vector<hsize_t> h;
  for (int64_t d : dims) h.push_back(as_hsize(d));
  return create_dataset(loc, name, TypeOf<T>::file(), h);
}

void mark_float16(hid_t dataset) { write_string_attribute(dataset, "dtype", kFloat16); }

template <typename T>
void write_column(hid_t group, const std::string& name, const std::vector<T>& values) {
  const Dataset ds = create_typed<T>(group, name, {static_cast<int64_t>(values.size())});
  if (!values.empty()) write_dataset_raw(ds.get(), TypeOf<T>::mem(), values.data());
}

void write_string_column(hid_t group, const std::string& name, const std::vector<std::string>& values) {
  const Datatype type(string_type_for(values));
  const hsize_t n = values.size();
  const Dataset ds = create_dataset(group, name, type.get(), std::span<const hsize_t>(&n, 1));
  if (!values.empty()) write_string_dataset(ds.get(), values);
}

void write_header(hid_t file, const QuantizedModelHeader& header) {
  write_string_attribute(file, "format", "amlq");
  write_attribute<uint32_t>(file, "format_version", packed::kFormatVersion);
  write_string_attribute(file, "tool_version", header.tool_version.empty() ? AMLQ_VERSION : header.tool_version);
  write_string_attribute(file, "source_model", header.source_model);
  write_string_attribute(file, "config_json", header.config_json);
  write_attribute<double>(file, "target_bpw", header.target_bpw);
  write_attribute<double>(file, "achieved_bpw", header.achieved_bpw);
  write_string_attribute(file, "search_method", header.search_method);
  write_string_attribute(file, "calibration", header.calibration);
  write_string_attribute(file, "quantizer", header.quantizer);
  write_string_attribute(file, "lowrank_method", header.lowrank_method);
  write_string_attribute(file, "extra", header.extra_json);
}

void write_spec_attributes(hid_t group, const QuantSpec& spec) {
  std::vector<int32_t> bits, groups;
  std::vector<double> fractions;
  for (const auto& p : spec.parts) {
    bits.push_back(p.bits);
    groups.push_back(p.group);
    fractions.push_back(p.fraction);
  }
  write_string_attribute(group, "spec", spec.label());
  write_array_attribute<int32_t>(group, "spec_bits", bits);
  write_array_attribute<int32_t>(group, "spec_group", groups);
  write_array_attribute<double>(group, "spec_fraction", fractions);
  write_attribute<uint8_t>(group, "symmetric", spec.symmetric);
  write_attribute<uint8_t>(group, "act_order", spec.act_order);
  write_attribute<uint8_t>(group, "static_groups", spec.static_groups);
}

void create_linear(hid_t linears, const LinearLayout& l) {
  const Group g = create_group(linears, l.name);
  write_attribute<int32_t>(g.get(), "rows", l.rows);
  write_attribute<int32_t>(g.get(), "cols", l.cols);
  write_spec_attributes(g.get(), l.spec);
  write_attribute<int32_t>(g.get(), "num_parts", static_cast<int32_t>(l.parts.size()));
  write_attribute<int32_t>(g.get(), "rank", l.rank);
  write_string_attribute(g.get(), "lowrank_method", file_lowrank_name(l.lowrank));
  write_string_attribute(g.get(), "factor_format", file_factor_format_name(l.factor_format));
  write_attribute<double>(g.get(), "eps", l.eps);
  write_attribute<double>(g.get(), "bpw", l.bpw);

  if (l.has_perm) create_typed<int32_t>(g.get(), "perm", {l.cols});
  const Group parts = create_group(g.get(), "parts");
  for (size_t p = 0; p < l.parts.size(); ++p) {
    const PartLayout& part = l.parts[p];
    const Group pg = create_group(parts.get(), std::to_string(p));
    write_attribute<int32_t>(pg.get(), "col_begin", part.col_begin);
    write_attribute<int32_t>(pg.get(), "col_end", part.col_end);
    write_attribute<int32_t>(pg.get(), "bits", part.bits);
    write_attribute<int32_t>(pg.get(), "group", part.group);
    write_attribute<int32_t>(pg.get(), "num_groups", part.num_groups);
    create_typed<uint32_t>(pg.get(), "codes",
                           {l.rows, packed::words_per_row(part.col_end - part.col_begin, part.bits)});
    mark_float16(create_typed<uint16_t>(pg.get(), "scales", {l.rows, part.num_groups}).get());
    create_typed<uint32_t>(pg.get(), "zeros", {l.rows, packed::words_per_row(part.num_groups, part.bits)});
  }
  if (l.rank > 0) {
    const Group lr = create_group(g.get(), "lowrank");
    if (l.factor_format == FactorFormat::Fp16) {
      mark_float16(create_typed<uint16_t>(lr.get(), "A", {l.rows, l.rank}).get());
      mark_float16(create_typed<uint16_t>(lr.get(), "B", {l.rank, l.cols}).get());
    } else {
      create_typed<int8_t>(lr.get(), "A", {l.rows, l.rank});
      mark_float16(create_typed<uint16_t>(lr.get(), "A_scales", {l.rows}).get());
      create_typed<int8_t>(lr.get(), "B", {l.rank, l.cols});
      mark_float16(create_typed<uint16_t>(lr.get(), "B_scales", {l.rank}).get());
    }
  }
  if (l.has_bias) create_typed<float>(g.get(), "bias", {l.rows});
}

void write_measurements(hid_t file, const MeasurementTable& table) {
  const Group m = create_group(file, "measurements");
  std::vector<std::string> names, specs;
  std::vector<int32_t> rows, cols, layer, rank, num_parts, bits, group;
  std::vector<double> bpw, eps, eps_stderr, fraction, alpha, alpha_linearity;
  bool sampled = false, sensitive = false;
  std::vector<uint8_t> symmetric, act_order, static_groups;
  for (size_t l = 0; l < table.size(); ++l) {
    names.push_back(table[l].name);
    rows.push_back(table[l].rows);
    cols.push_back(table[l].cols);
    alpha.push_back(table[l].alpha);
    alpha_linearity.push_back(table[l].alpha_linearity);
    sensitive = sensitive || table[l].alpha != 0;
    for (const Candidate& c : table[l].candidates) {
      layer.push_back(static_cast<int32_t>(l));
      specs.push_back(c.spec.label());
      rank.push_back(c.rank);
      bpw.push_back(c.bpw);
      eps.push_back(c.eps);
      eps_stderr.push_back(c.eps_stderr);
      sampled = sampled || c.eps_stderr > 0;
      symmetric.push_back(c.spec.symmetric);
      act_order.push_back(c.spec.act_order);
      static_groups.push_back(c.spec.static_groups);
      num_parts.push_back(static_cast<int32_t>(c.spec.parts.size()));
      for (const QuantPart& p : c.spec.parts) {
        bits.push_back(p.bits);
        group.push_back(p.group);
        fraction.push_back(p.fraction);
      }
    }
  }
  const Group layers = create_group(m.get(), "layers");
  write_string_column(layers.get(), "name", names);
  write_column(layers.get(), "rows", rows);
  write_column(layers.get(), "cols", cols);
  if (sensitive) {  // optional: loss sensitivities from the noise probes
    write_column(layers.get(), "alpha", alpha);
    write_column(layers.get(), "alpha_linearity", alpha_linearity);
  }
  const Group candidates = create_group(m.get(), "candidates");
  write_column(candidates.get(), "layer", layer);
  write_string_column(candidates.get(), "spec", specs);
  write_column(candidates.get(), "rank", rank);
  write_column(candidates.get(), "bpw", bpw);
  write_column(candidates.get(), "eps", eps);
  if (sampled) write_column(candidates.get(), "eps_stderr", eps_stderr);  // optional: row-sampled measurements
  write_column(candidates.get(), "symmetric", symmetric);
  write_column(candidates.get(), "act_order", act_order);
  write_column(candidates.get(), "static_groups", static_groups);
  write_column(candidates.get(), "num_parts", num_parts);
  const Group parts = create_group(m.get(), "candidate_parts");
  write_column(parts.get(), "bits", bits);
  write_column(parts.get(), "group", group);
  write_column(parts.get(), "fraction", fraction);
}

// Writes `values` into an existing dataset after checking it has as many elements.
template <typename T>
void fill(hid_t group, const std::string& path, const std::vector<T>& values, const std::string& linear,
          hid_t transfer) {
  const Dataset ds = open_dataset(group, path);
  int64_t expected = 1;
  for (hsize_t d : dataset_dims(ds.get())) expected *= static_cast<int64_t>(d);
  require_size(values.size(), expected, linear, path.c_str());
  if (!values.empty()) write_dataset_raw(ds.get(), TypeOf<T>::mem(), values.data(), transfer);
}

}  // namespace

LinearLayout layout_of(const PackedLinear& linear) {
  const std::string& name = linear.name;
  require_valid_name(name, "linear");
  if (linear.rows <= 0 || linear.cols <= 0)
    AMLQ_FAIL(Internal, "linear '{}': shape {} x {} is empty", name, linear.rows, linear.cols);
  if (linear.parts.empty()) AMLQ_FAIL(Internal, "linear '{}' has no parts", name);
  LinearLayout l;
  l.name = name;
  l.rows = linear.rows;
  l.cols = linear.cols;
  l.spec = linear.spec;
  l.has_perm = !linear.perm.empty();
  if (l.has_perm) require_size(linear.perm.size(), linear.cols, name, "perm");
  int next_col = 0;
  for (const PackedPart& p : linear.parts) {
    if (p.col_begin != next_col || p.col_end <= p.col_begin || !packed::valid_bits(p.bits) || p.group <= 0 ||
        p.num_groups <= 0)
      AMLQ_FAIL(Internal, "linear '{}': part [{}, {}) {}b g{} x{} groups does not continue the parts before it", name,
                p.col_begin, p.col_end, p.bits, p.group, p.num_groups);
    next_col = p.col_end;
    require_size(p.codes.size(), int64_t{linear.rows} * packed::words_per_row(p.col_end - p.col_begin, p.bits), name,
                 "codes");
    require_size(p.scales.size(), int64_t{linear.rows} * p.num_groups, name, "scales");
    require_size(p.zeros.size(), int64_t{linear.rows} * packed::words_per_row(p.num_groups, p.bits), name, "zeros");
    l.parts.push_back({p.col_begin, p.col_end, p.bits, p.group, p.num_groups});
  }
  if (next_col != linear.cols)
    AMLQ_FAIL(Internal, "linear '{}': parts cover {} of {} columns", name, next_col, linear.cols);
  if (linear.rank < 0) AMLQ_FAIL(Internal, "linear '{}': negative rank {}", name, linear.rank);
  l.lowrank = linear.lowrank;
  l.factor_format = linear.factor_format;
  l.rank = linear.rank;
  if (l.rank > 0) {
    const int64_t a = int64_t{linear.rows} * l.rank, b = int64_t{l.rank} * linear.cols;
    if (l.factor_format == FactorFormat::Fp16) {
      require_size(linear.a_fp16.size(), a, name, "a_fp16");
      require_size(linear.b_fp16.size(), b, name, "b_fp16");
    } else {
      require_size(linear.a_int8.size(), a, name, "a_int8");
      require_size(linear.a_scales.size(), linear.rows, name, "a_scales");
      require_size(linear.b_int8.size(), b, name, "b_int8");
      require_size(linear.b_scales.size(), l.rank, name, "b_scales");
    }
  }
  l.has_bias = !linear.bias.empty();
  if (l.has_bias) require_size(linear.bias.size(), linear.rows, name, "bias");
  l.eps = linear.eps;
  l.bpw = linear.bpw;
  return l;
}

PassthroughLayout layout_of(const PassthroughTensor& tensor) {
  require_valid_name(tensor.name, "passthrough tensor");
  const int64_t bytes = tensor.numel() * static_cast<int64_t>(dtype_size(tensor.dtype));
  if (static_cast<int64_t>(tensor.data.size()) != bytes)
    AMLQ_FAIL(Internal, "passthrough tensor '{}': {} bytes, its shape [{}] of {} implies {}", tensor.name,
              tensor.data.size(), fmt::join(tensor.shape, ", "), dtype_name(tensor.dtype), bytes);
  return {tensor.name, tensor.dtype, tensor.shape};
}

ModelLayout layout_of(const QuantizedModel& model) {
  ModelLayout layout;
  layout.header = model.header;
  std::set<std::string> names;
  for (const auto& linear : model.linears) {
    layout.linears.push_back(layout_of(linear));
    if (!names.insert(linear.name).second) AMLQ_FAIL(Internal, "linear '{}' appears twice", linear.name);
  }
  names.clear();
  for (const auto& tensor : model.passthrough) {
    layout.passthrough.push_back(layout_of(tensor));
    if (!names.insert(tensor.name).second) AMLQ_FAIL(Internal, "passthrough tensor '{}' appears twice", tensor.name);
  }
  layout.measurements = model.measurements;
  return layout;
}

File create_model_file(const std::string& path, hid_t access) {
  quiet_hdf5_errors();
  const PropertyList fcpl = file_creation_plist();
  return File(AMLQ_HDF5_ID(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl.get(), access)));
}

void create_layout(hid_t file, const ModelLayout& layout) {
  write_header(file, layout.header);
  const Group linears = create_group(file, "linears", /*track_creation_order=*/true);
  for (const auto& l : layout.linears) create_linear(linears.get(), l);
  const Group passthrough = create_group(file, "passthrough", /*track_creation_order=*/true);
  for (const auto& t : layout.passthrough) {
    std::vector<hsize_t> dims;
    for (int64_t d : t.shape) dims.push_back(as_hsize(d));
    const Dataset ds = create_dataset(passthrough.get(), t.name, passthrough_file_type(t.dtype), dims);
    write_string_attribute(ds.get(), "dtype", file_dtype_name(t.dtype));
  }
  write_measurements(file, layout.measurements);
}

void write_linear(hid_t file, const PackedLinear& linear, hid_t transfer) {
  const std::string& name = linear.name;
  if (!link_exists(file, "linears/" + name)) AMLQ_FAIL(Internal, "linear '{}' is not in the file's layout", name);
  const Group g = open_group(file, "linears/" + name);
  if (!linear.perm.empty()) fill(g.get(), "perm", linear.perm, name, transfer);
  for (size_t p = 0; p < linear.parts.size(); ++p) {
    const std::string prefix = "parts/" + std::to_string(p) + "/";
    fill(g.get(), prefix + "codes", linear.parts[p].codes, name, transfer);
    fill(g.get(), prefix + "scales", linear.parts[p].scales, name, transfer);
    fill(g.get(), prefix + "zeros", linear.parts[p].zeros, name, transfer);
  }
  if (linear.rank > 0) {
    if (linear.factor_format == FactorFormat::Fp16) {
      fill(g.get(), "lowrank/A", linear.a_fp16, name, transfer);
      fill(g.get(), "lowrank/B", linear.b_fp16, name, transfer);
    } else {
      fill(g.get(), "lowrank/A", linear.a_int8, name, transfer);
      fill(g.get(), "lowrank/A_scales", linear.a_scales, name, transfer);
      fill(g.get(), "lowrank/B", linear.b_int8, name, transfer);
      fill(g.get(), "lowrank/B_scales", linear.b_scales, name, transfer);
    }
  }
  if (!linear.bias.empty()) fill(g.get(), "bias", linear.bias, name, transfer);
}

void write_passthrough(hid_t file, const PassthroughTensor& tensor, hid_t transfer) {
  const PassthroughLayout layout = layout_of(tensor);
  const Group group = open_group(file, "passthrough");
  const Dataset ds = open_dataset(group.get(), tensor.name);
  if (!tensor.data.empty())
    write_dataset_raw(ds.get(), passthrough_file_type(layout.dtype), tensor.data.data(), transfer);
}

}  // namespace amlq::h5

namespace amlq {

int64_t PassthroughTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

void write_quantized_model(const std::string& path, const QuantizedModel& model) {
  const h5::ModelLayout layout = h5::layout_of(model);  // validate before touching the disk
  AtomicOutput output(path);
  try {
    h5::File file = h5::create_model_file(output.temp_path());
    h5::create_layout(file.get(), layout);
    for (const auto& linear : model.linears) h5::write_linear(file.get(), linear);
    for (const auto& tensor : model.passthrough) h5::write_passthrough(file.get(), tensor);
    file.close();
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::Internal) throw;
    AMLQ_FAIL(Output, "{}: {}", path, e.what());
  }
  output.commit();
}

}  // namespace amlq
