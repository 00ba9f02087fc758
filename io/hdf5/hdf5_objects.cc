#include "io/hdf5/hdf5_objects.h"

#include <algorithm>
#include <cstring>

namespace amlq::h5 {

namespace {

Dataspace make_dataspace(std::span<const hsize_t> dims) {
  if (dims.empty()) return Dataspace(AMLQ_HDF5_ID(H5Screate(H5S_SCALAR)));
  return Dataspace(AMLQ_HDF5_ID(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr)));
}

Datatype variable_string_type() {
  Datatype type(AMLQ_HDF5_ID(H5Tcopy(H5T_C_S1)));
  AMLQ_CHECK_HDF5(H5Tset_size(type.get(), H5T_VARIABLE));
  AMLQ_CHECK_HDF5(H5Tset_cset(type.get(), H5T_CSET_UTF8));
  return type;
}

std::string trim_padding(const char* data, size_t size, H5T_str_t pad) {
  size_t n = 0;
  while (n < size && data[n] != '\0') ++n;
  std::string s(data, n);
  if (pad == H5T_STR_SPACEPAD)
    while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

herr_t collect_name(hid_t, const char* name, const H5L_info_t*, void* data) {
  static_cast<std::vector<std::string>*>(data)->emplace_back(name);
  return 0;
}

}  // namespace

PropertyList file_creation_plist() {
  PropertyList plist(AMLQ_HDF5_ID(H5Pcreate(H5P_FILE_CREATE)));
  AMLQ_CHECK_HDF5(H5Pset_obj_track_times(plist.get(), false));
  AMLQ_CHECK_HDF5(H5Pset_link_creation_order(plist.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED));
  return plist;
}

PropertyList group_creation_plist(bool track_creation_order) {
  PropertyList plist(AMLQ_HDF5_ID(H5Pcreate(H5P_GROUP_CREATE)));
  AMLQ_CHECK_HDF5(H5Pset_obj_track_times(plist.get(), false));
  if (track_creation_order)
    AMLQ_CHECK_HDF5(H5Pset_link_creation_order(plist.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED));
  return plist;
}

PropertyList dataset_creation_plist() {
  PropertyList plist(AMLQ_HDF5_ID(H5Pcreate(H5P_DATASET_CREATE)));
  AMLQ_CHECK_HDF5(H5Pset_obj_track_times(plist.get(), false));
  AMLQ_CHECK_HDF5(H5Pset_layout(plist.get(), H5D_CONTIGUOUS));
  AMLQ_CHECK_HDF5(H5Pset_alloc_time(plist.get(), H5D_ALLOC_TIME_EARLY));
  AMLQ_CHECK_HDF5(H5Pset_fill_time(plist.get(), H5D_FILL_TIME_NEVER));
  return plist;
}

Group create_group(hid_t loc, const std::string& name, bool track_creation_order) {
  const PropertyList gcpl = group_creation_plist(track_creation_order);
  return Group(AMLQ_HDF5_ID(H5Gcreate2(loc, name.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT)));
}

Group open_group(hid_t loc, const std::string& name) {
  return Group(AMLQ_HDF5_ID(H5Gopen2(loc, name.c_str(), H5P_DEFAULT)));
}

Dataset open_dataset(hid_t loc, const std::string& name) {
  return Dataset(AMLQ_HDF5_ID(H5Dopen2(loc, name.c_str(), H5P_DEFAULT)));
}

bool link_exists(hid_t loc, const std::string& path) {
  size_t end = 0;
  while (end != std::string::npos) {
    end = path.find('/', end + 1);
    const std::string prefix = path.substr(0, end);
    const htri_t found = H5Lexists(loc, prefix.c_str(), H5P_DEFAULT);
    AMLQ_CHECK_HDF5(found);
    if (!found) return false;
  }
  return true;
}

std::vector<std::string> link_names(hid_t loc) {
  const PropertyList gcpl(AMLQ_HDF5_ID(H5Gget_create_plist(loc)));
  unsigned order_flags = 0;
  AMLQ_CHECK_HDF5(H5Pget_link_creation_order(gcpl.get(), &order_flags));
  const H5_index_t index = (order_flags & H5P_CRT_ORDER_INDEXED) ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME;
  std::vector<std::string> names;
  hsize_t position = 0;
  AMLQ_CHECK_HDF5(H5Literate(loc, index, H5_ITER_INC, &position, collect_name, &names));
  return names;
}

bool has_attribute(hid_t obj, const std::string& name) {
  const htri_t found = H5Aexists(obj, name.c_str());
  AMLQ_CHECK_HDF5(found);
  return found > 0;
}

void write_string_attribute(hid_t obj, const std::string& name, const std::string& value) {
  const Datatype type = variable_string_type();
  const Dataspace space = make_dataspace({});
  const Attribute attr(AMLQ_HDF5_ID(H5Acreate2(obj, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT)));
  const char* text = value.c_str();
  AMLQ_CHECK_HDF5(H5Awrite(attr.get(), type.get(), &text));
}

std::string read_string_attribute(hid_t obj, const std::string& name) {
  const Attribute attr(AMLQ_HDF5_ID(H5Aopen(obj, name.c_str(), H5P_DEFAULT)));
  const Datatype file_type(AMLQ_HDF5_ID(H5Aget_type(attr.get())));
  if (H5Tget_class(file_type.get()) != H5T_STRING) AMLQ_FAIL(Input, "attribute '{}' is not a string", name);
  const Dataspace space(AMLQ_HDF5_ID(H5Aget_space(attr.get())));
  if (H5Sget_simple_extent_npoints(space.get()) != 1) AMLQ_FAIL(Input, "attribute '{}' is not a single string", name);
  const htri_t variable = H5Tis_variable_str(file_type.get());
  AMLQ_CHECK_HDF5(variable);
  if (variable) {
    const Datatype mem_type = variable_string_type();
    char* text = nullptr;
    AMLQ_CHECK_HDF5(H5Aread(attr.get(), mem_type.get(), &text));
    std::string value = text ? text : "";
    H5free_memory(text);
    return value;
  }
  const size_t size = H5Tget_size(file_type.get());
  std::vector<char> buffer(size + 1, '\0');
  AMLQ_CHECK_HDF5(H5Aread(attr.get(), file_type.get(), buffer.data()));
  return trim_padding(buffer.data(), size, H5Tget_strpad(file_type.get()));
}

void write_attribute_raw(hid_t obj, const std::string& name, hid_t file_type, hid_t mem_type,
                         std::span<const hsize_t> dims, const void* data) {
  const Dataspace space = make_dataspace(dims);
  const Attribute attr(AMLQ_HDF5_ID(H5Acreate2(obj, name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT)));
  AMLQ_CHECK_HDF5(H5Awrite(attr.get(), mem_type, data));
}

hssize_t attribute_size(hid_t obj, const std::string& name) {
  const Attribute attr(AMLQ_HDF5_ID(H5Aopen(obj, name.c_str(), H5P_DEFAULT)));
  const Dataspace space(AMLQ_HDF5_ID(H5Aget_space(attr.get())));
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  AMLQ_CHECK_HDF5(n);
  return n;
}

H5T_class_t attribute_class(hid_t obj, const std::string& name) {
  const Attribute attr(AMLQ_HDF5_ID(H5Aopen(obj, name.c_str(), H5P_DEFAULT)));
  const Datatype type(AMLQ_HDF5_ID(H5Aget_type(attr.get())));
  return H5Tget_class(type.get());
}

void require_single_number(hid_t obj, const std::string& name) {
  const H5T_class_t c = attribute_class(obj, name);
  if ((c != H5T_INTEGER && c != H5T_FLOAT) || attribute_size(obj, name) != 1)
    AMLQ_FAIL(Input, "attribute '{}' is not a single number", name);
}

void read_attribute_raw(hid_t obj, const std::string& name, hid_t mem_type, void* data) {
  const Attribute attr(AMLQ_HDF5_ID(H5Aopen(obj, name.c_str(), H5P_DEFAULT)));
  AMLQ_CHECK_HDF5(H5Aread(attr.get(), mem_type, data));
}

Dataset create_dataset(hid_t loc, const std::string& name, hid_t file_type, std::span<const hsize_t> dims) {
  const Dataspace space = make_dataspace(dims);
  const PropertyList dcpl = dataset_creation_plist();
  return Dataset(
      AMLQ_HDF5_ID(H5Dcreate2(loc, name.c_str(), file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT)));
}

std::vector<hsize_t> dataset_dims(hid_t dataset) {
  const Dataspace space(AMLQ_HDF5_ID(H5Dget_space(dataset)));
  const int rank = H5Sget_simple_extent_ndims(space.get());
  AMLQ_CHECK_HDF5(rank);
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  if (rank > 0) AMLQ_CHECK_HDF5(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr));
  return dims;
}

size_t dataset_elements_in_file(hid_t dataset, const std::string& where) {
  const auto dims = dataset_dims(dataset);
  const size_t element_size = dataset_type_size(dataset);
  uint64_t elements = 1, bytes = element_size;
  bool overflow = false;
  for (hsize_t d : dims) {
    overflow = overflow || __builtin_mul_overflow(elements, static_cast<uint64_t>(d), &elements) ||
               __builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes);
  }
  const hid_t file_id = AMLQ_HDF5_ID(H5Iget_file_id(dataset));
  hsize_t file_size = 0;
  const herr_t status = H5Fget_filesize(file_id, &file_size);
  H5Fclose(file_id);  // H5Iget_file_id opened a new reference
  AMLQ_CHECK_HDF5(status);
  if (overflow || bytes > file_size || elements > SIZE_MAX)
    AMLQ_FAIL(Input, "{}: its shape claims {} bytes, more than the whole file ({} bytes)", where,
              overflow ? std::string("over 2^64") : std::to_string(bytes), file_size);
  return static_cast<size_t>(elements);
}

H5T_class_t dataset_class(hid_t dataset) {
  const Datatype type(AMLQ_HDF5_ID(H5Dget_type(dataset)));
  return H5Tget_class(type.get());
}

size_t dataset_type_size(hid_t dataset) {
  const Datatype type(AMLQ_HDF5_ID(H5Dget_type(dataset)));
  return H5Tget_size(type.get());
}

void write_dataset_raw(hid_t dataset, hid_t mem_type, const void* data, hid_t xfer) {
  AMLQ_CHECK_HDF5(H5Dwrite(dataset, mem_type, H5S_ALL, H5S_ALL, xfer, data));
}

void read_dataset_raw(hid_t dataset, hid_t mem_type, void* data, hid_t xfer) {
  AMLQ_CHECK_HDF5(H5Dread(dataset, mem_type, H5S_ALL, H5S_ALL, xfer, data));
}

hid_t string_type_for(const std::vector<std::string>& values) {
  size_t longest = 1;
  for (const auto& v : values) longest = std::max(longest, v.size());
  const hid_t type = AMLQ_HDF5_ID(H5Tcopy(H5T_C_S1));
  AMLQ_CHECK_HDF5(H5Tset_size(type, longest));
  AMLQ_CHECK_HDF5(H5Tset_strpad(type, H5T_STR_NULLPAD));
  AMLQ_CHECK_HDF5(H5Tset_cset(type, H5T_CSET_UTF8));
  return type;
}

void write_string_dataset(hid_t dataset, const std::vector<std::string>& values, hid_t xfer) {
  const Datatype type(AMLQ_HDF5_ID(H5Dget_type(dataset)));
  const size_t size = H5Tget_size(type.get());
  std::vector<char> buffer(std::max<size_t>(values.size(), 1) * size, '\0');
  for (size_t i = 0; i < values.size(); ++i) {
    AMLQ_ASSERT(values[i].size() <= size, "string '{}' is longer than the dataset's {} bytes", values[i], size);
    std::memcpy(buffer.data() + i * size, values[i].data(), values[i].size());
  }
  write_dataset_raw(dataset, type.get(), buffer.data(), xfer);
}

std::vector<std::string> read_string_dataset(hid_t dataset) {
  const Datatype file_type(AMLQ_HDF5_ID(H5Dget_type(dataset)));
  if (H5Tget_class(file_type.get()) != H5T_STRING) AMLQ_FAIL(Input, "dataset is not a string dataset");
  const Dataspace space(AMLQ_HDF5_ID(H5Dget_space(dataset)));
  const hssize_t count = H5Sget_simple_extent_npoints(space.get());
  AMLQ_CHECK_HDF5(count);
  std::vector<std::string> values;
  values.reserve(static_cast<size_t>(count));
  if (count == 0) return values;
  const htri_t variable = H5Tis_variable_str(file_type.get());
  AMLQ_CHECK_HDF5(variable);
  if (variable) {
    const Datatype mem_type = variable_string_type();
    std::vector<char*> texts(static_cast<size_t>(count), nullptr);
    read_dataset_raw(dataset, mem_type.get(), texts.data());
    for (char* t : texts) values.emplace_back(t ? t : "");
    H5Dvlen_reclaim(mem_type.get(), space.get(), H5P_DEFAULT, texts.data());
    return values;
  }
  const size_t size = H5Tget_size(file_type.get());
  std::vector<char> buffer(static_cast<size_t>(count) * size);
  read_dataset_raw(dataset, file_type.get(), buffer.data());
  const H5T_str_t pad = H5Tget_strpad(file_type.get());
  for (hssize_t i = 0; i < count; ++i)
    values.push_back(trim_padding(buffer.data() + static_cast<size_t>(i) * size, size, pad));
  return values;
}

}  // namespace amlq::h5
