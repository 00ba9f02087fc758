#pragma once
// Thin typed helpers over the HDF5 C API: reproducible creation property lists,
// groups, scalar/1-D attributes, n-D datasets of fixed-size numbers and
// fixed-length strings. Everything fails through AMLQ_CHECK_HDF5.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "io/hdf5/hdf5_check.h"

namespace amlq::h5 {

// Memory and file (little-endian) HDF5 types of a C++ number type.
template <typename T>
struct TypeOf;
#define AMLQ_H5_TYPE(CPP, MEM, FILE_TYPE)     \
  template <>                                 \
  struct TypeOf<CPP> {                        \
    static hid_t mem() { return MEM; }        \
    static hid_t file() { return FILE_TYPE; } \
  }
AMLQ_H5_TYPE(int8_t, H5T_NATIVE_INT8, H5T_STD_I8LE);
AMLQ_H5_TYPE(uint8_t, H5T_NATIVE_UINT8, H5T_STD_U8LE);
AMLQ_H5_TYPE(int16_t, H5T_NATIVE_INT16, H5T_STD_I16LE);
AMLQ_H5_TYPE(uint16_t, H5T_NATIVE_UINT16, H5T_STD_U16LE);
AMLQ_H5_TYPE(int32_t, H5T_NATIVE_INT32, H5T_STD_I32LE);
AMLQ_H5_TYPE(uint32_t, H5T_NATIVE_UINT32, H5T_STD_U32LE);
AMLQ_H5_TYPE(int64_t, H5T_NATIVE_INT64, H5T_STD_I64LE);
AMLQ_H5_TYPE(uint64_t, H5T_NATIVE_UINT64, H5T_STD_U64LE);
AMLQ_H5_TYPE(float, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE);
AMLQ_H5_TYPE(double, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE);
#undef AMLQ_H5_TYPE

// ---- creation property lists: no timestamps, so equal input gives equal bytes
PropertyList file_creation_plist();  // the root group tracks link creation order
PropertyList group_creation_plist(bool track_creation_order);
// Contiguous storage allocated when the dataset is created, never pre-filled:
// the file's layout is fixed by the metadata alone, whatever order data arrives in.
PropertyList dataset_creation_plist();

// ---- groups and links
Group create_group(hid_t loc, const std::string& name, bool track_creation_order = false);
Group open_group(hid_t loc, const std::string& name);
Dataset open_dataset(hid_t loc, const std::string& name);
// True if every component of the relative path `path` exists under loc.
bool link_exists(hid_t loc, const std::string& path);
// Names of loc's links, in creation order when the group tracks it, else by name.
std::vector<std::string> link_names(hid_t loc);

// ---- attributes (scalar or 1-D)
bool has_attribute(hid_t obj, const std::string& name);
void write_string_attribute(hid_t obj, const std::string& name, const std::string& value);
std::string read_string_attribute(hid_t obj, const std::string& name);  // variable or fixed length
void write_attribute_raw(hid_t obj, const std::string& name, hid_t file_type, hid_t mem_type,
                         std::span<const hsize_t> dims, const void* data);

template <typename T>
void write_attribute(hid_t obj, const std::string& name, T value) {
  write_attribute_raw(obj, name, TypeOf<T>::file(), TypeOf<T>::mem(), {}, &value);
}
template <typename T>
void write_array_attribute(hid_t obj, const std::string& name, std::span<const T> values) {
  const hsize_t n = values.size();
  write_attribute_raw(obj, name, TypeOf<T>::file(), TypeOf<T>::mem(), std::span<const hsize_t>(&n, 1), values.data());
}

// Number of elements of an attribute (1 for a scalar); reading converts to T.
hssize_t attribute_size(hid_t obj, const std::string& name);
H5T_class_t attribute_class(hid_t obj, const std::string& name);
void read_attribute_raw(hid_t obj, const std::string& name, hid_t mem_type, void* data);

// Throws Input unless the attribute holds exactly one integer or float.
void require_single_number(hid_t obj, const std::string& name);

// One number, converted to T (a file may store another width or a float).
template <typename T>
T read_attribute(hid_t obj, const std::string& name) {
  require_single_number(obj, name);  // reading a longer attribute would write past `value`
  T value{};
  read_attribute_raw(obj, name, TypeOf<T>::mem(), &value);
  return value;
}
template <typename T>
std::vector<T> read_array_attribute(hid_t obj, const std::string& name) {
  std::vector<T> values(static_cast<size_t>(attribute_size(obj, name)));
  if (!values.empty()) read_attribute_raw(obj, name, TypeOf<T>::mem(), values.data());
  return values;
}

// ---- datasets
// An empty `dims` creates a scalar dataset.
Dataset create_dataset(hid_t loc, const std::string& name, hid_t file_type, std::span<const hsize_t> dims);
std::vector<hsize_t> dataset_dims(hid_t dataset);
// The number of elements of a dataset, after checking that they can be stored in
// its file (elements x element size <= file size, without overflow): a corrupt or
// hostile shape then cannot make a reader allocate more memory than the file
// holds. amlq stores data contiguously and uncompressed, so every valid file
// passes. Throws Input "<where> claims ... bytes, the file has ...".
size_t dataset_elements_in_file(hid_t dataset, const std::string& where);
H5T_class_t dataset_class(hid_t dataset);
size_t dataset_type_size(hid_t dataset);
void write_dataset_raw(hid_t dataset, hid_t mem_type, const void* data, hid_t xfer = H5P_DEFAULT);
void read_dataset_raw(hid_t dataset, hid_t mem_type, void* data, hid_t xfer = H5P_DEFAULT);

// Fixed-length, NUL-padded UTF-8 strings (writable with parallel HDF5, unlike
// variable-length ones). The element size is the longest string (at least 1).
hid_t string_type_for(const std::vector<std::string>& values);  // caller closes (wrap in Datatype)
void write_string_dataset(hid_t dataset, const std::vector<std::string>& values, hid_t xfer = H5P_DEFAULT);
std::vector<std::string> read_string_dataset(hid_t dataset);

}  // namespace amlq::h5
