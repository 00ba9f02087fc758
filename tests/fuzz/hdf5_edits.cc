#include "tests/fuzz/hdf5_edits.h"

#include <hdf5.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "io/hdf5/hdf5_check.h"

namespace amlq::fuzz {
namespace {

// Attribute names amlq's readers look for, so that an edit can add a missing one.
constexpr const char* kKnownAttributes[] = {
    "format", "format_version", "tool_version", "config_json", "extra", "target_bpw", "achieved_bpw", "rows", "cols",
    "num_parts", "rank", "lowrank_method", "factor_format", "eps", "bpw", "spec_bits", "spec_group", "spec_fraction",
    "symmetric", "act_order", "static_groups", "col_begin", "col_end", "bits", "group", "num_groups", "dtype", "layer",
    "tokens", "input_hash", "description"};

class Script {
 public:
  explicit Script(Input bytes) : bytes_(bytes) {}
  bool done() const { return pos_ >= bytes_.size(); }
  uint8_t u8() { return done() ? 0 : bytes_[pos_++]; }
  uint32_t u16() { return u8() | static_cast<uint32_t>(u8()) << 8; }
  // n bytes of payload (zeros past the end).
  std::vector<uint8_t> take(size_t n) {
    std::vector<uint8_t> out(n, 0);
    for (size_t i = 0; i < n && !done(); ++i) out[i] = u8();
    return out;
  }
  std::string name() {
    const size_t n = 1 + u8() % 12;
    std::string s;
    for (size_t i = 0; i < n && !done(); ++i) {
      const char c = static_cast<char>(u8());
      s += (c == '/' || c == '\0' || c == '.') ? '_' : c;
    }
    return s.empty() ? "x" : s;
  }

 private:
  Input bytes_;
  size_t pos_ = 0;
};

struct Object {
  std::string path;  // from the root, "." for the root
  H5O_type_t type;
};

herr_t collect(hid_t, const char* name, const H5O_info_t* info, void* data) {
  if (info->type == H5O_TYPE_GROUP || info->type == H5O_TYPE_DATASET)
    static_cast<std::vector<Object>*>(data)->push_back({name, info->type});
  return 0;
}

std::vector<Object> objects_of(hid_t file) {
  std::vector<Object> all;
  H5Ovisit2(file, H5_INDEX_NAME, H5_ITER_INC, collect, &all, H5O_INFO_BASIC);
  return all;
}

std::string parent_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// A type from a selector: the kinds amlq writes and a few it does not.
hid_t pick_type(uint8_t selector) {
  switch (selector % 10) {
    case 0: return H5Tcopy(H5T_STD_I32LE);
    case 1: return H5Tcopy(H5T_STD_I64LE);
    case 2: return H5Tcopy(H5T_STD_U32LE);
    case 3: return H5Tcopy(H5T_IEEE_F64LE);
    case 4: return H5Tcopy(H5T_IEEE_F32LE);
    case 5: return H5Tcopy(H5T_STD_U16LE);
    case 6: return H5Tcopy(H5T_STD_U8LE);
    case 7: return H5Tcopy(H5T_STD_I8LE);
    case 8: {
      const hid_t t = H5Tcopy(H5T_C_S1);
      H5Tset_size(t, H5T_VARIABLE);
      H5Tset_cset(t, H5T_CSET_UTF8);
      return t;
    }
    default: {
      const hid_t t = H5Tcopy(H5T_C_S1);
      H5Tset_size(t, 1 + selector / 10 % 16);
      return t;
    }
  }
}

// Writes n elements of `type` from the script into an attribute or dataset.
template <class Write>
void write_payload(hid_t type, size_t n, Script& script, Write&& write) {
  if (H5Tis_variable_str(type) > 0) {
    std::vector<std::string> texts;
    std::vector<const char*> pointers;
    for (size_t i = 0; i < n; ++i) {
      const auto bytes = script.take(script.u8() % 24);
      texts.emplace_back(bytes.begin(), bytes.end());
    }
    for (const auto& t : texts) pointers.push_back(t.c_str());
    write(type, pointers.data());
    return;
  }
  const size_t size = H5Tget_size(type);
  std::vector<uint8_t> data = script.take(n * size);
  // Numbers near the edges of their ranges are what break readers.
  if (H5Tget_class(type) == H5T_FLOAT && size == 8 && !data.empty() && data[0] % 4 == 0) {
    const double specials[] = {0.0, -1.0, 1e300, -1e-300, 3.0, 0.5, 1e9, -0.0};
    for (size_t i = 0; i < n; ++i) std::memcpy(data.data() + i * 8, &specials[data[i * 8] / 4 % 8], 8);
  }
  write(type, data.data());
}

hid_t make_space(Script& script, int max_rank) {
  const int rank = script.u8() % (max_rank + 1);
  if (rank == 0) return H5Screate(H5S_SCALAR);
  hsize_t dims[3];
  for (int i = 0; i < rank; ++i) dims[i] = script.u8() % 17;
  return H5Screate_simple(rank, dims, nullptr);
}

size_t points_of(hid_t space) {
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  return n < 0 ? 0 : static_cast<size_t>(n);
}

void set_attribute(hid_t file, const Object& obj, Script& script) {
  const h5::Handle<H5Oclose> o(H5Oopen(file, obj.path.c_str(), H5P_DEFAULT));
  if (!o.valid()) return;
  H5O_info_t info{};
  if (H5Oget_info2(o.get(), &info, H5O_INFO_NUM_ATTRS) < 0) return;
  // Existing attributes first, then the names amlq looks for.
  const size_t choices = info.num_attrs + std::size(kKnownAttributes);
  const size_t pick = script.u8() % choices;
  std::string name;
  if (pick < info.num_attrs) {
    char buffer[256] = {};
    if (H5Aget_name_by_idx(o.get(), ".", H5_INDEX_NAME, H5_ITER_INC, pick, buffer, sizeof buffer, H5P_DEFAULT) < 0) return;
    name = buffer;
  } else {
    name = kKnownAttributes[pick - info.num_attrs];
  }
  if (H5Aexists(o.get(), name.c_str()) > 0) H5Adelete(o.get(), name.c_str());
  const uint8_t kind = script.u8();
  if (kind % 16 == 15) return;  // deleted only
  const h5::Datatype type(pick_type(kind));
  const h5::Dataspace space(make_space(script, 1));
  if (!type.valid() || !space.valid()) return;
  const h5::Attribute attr(H5Acreate2(o.get(), name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
  if (!attr.valid()) return;
  write_payload(type.get(), points_of(space.get()), script,
                [&](hid_t t, const void* data) { H5Awrite(attr.get(), t, data); });
}

// Copies every attribute of `from` onto `to` (same types, same values).
void copy_attributes(hid_t from, hid_t to) {
  H5O_info_t info{};
  if (H5Oget_info2(from, &info, H5O_INFO_NUM_ATTRS) < 0) return;
  for (hsize_t i = 0; i < info.num_attrs; ++i) {
    const h5::Attribute a(H5Aopen_by_idx(from, ".", H5_INDEX_NAME, H5_ITER_INC, i, H5P_DEFAULT, H5P_DEFAULT));
    if (!a.valid()) continue;
    char name[256] = {};
    H5Aget_name(a.get(), sizeof name, name);
    const h5::Datatype type(H5Aget_type(a.get()));
    const h5::Dataspace space(H5Aget_space(a.get()));
    const size_t n = points_of(space.get());
    const size_t size = H5Tget_size(type.get());
    std::vector<uint8_t> buffer(std::max<size_t>(n * size, 1));
    if (H5Aread(a.get(), type.get(), buffer.data()) < 0) continue;
    const h5::Attribute b(H5Acreate2(to, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
    if (b.valid()) H5Awrite(b.get(), type.get(), buffer.data());
    if (H5Tis_variable_str(type.get()) > 0 || H5Tdetect_class(type.get(), H5T_VLEN) > 0)
      H5Dvlen_reclaim(type.get(), space.get(), H5P_DEFAULT, buffer.data());
  }
}

// Replaces a dataset by one of another shape (same type) or another type (same
// shape), keeping its attributes; the data comes from the script.
void replace_dataset(hid_t file, const Object& obj, Script& script) {
  const h5::Dataset old(H5Dopen2(file, obj.path.c_str(), H5P_DEFAULT));
  if (!old.valid()) return;
  const bool new_type = script.u8() % 2;
  const h5::Datatype type(new_type ? pick_type(script.u8()) : H5Dget_type(old.get()));
  const h5::Dataspace space(new_type ? H5Dget_space(old.get()) : make_space(script, 2));
  if (!type.valid() || !space.valid() || points_of(space.get()) > 4096) return;
  const std::string temp = parent_of(obj.path) + "/amlq-fuzz-new";
  const h5::Dataset fresh(H5Dcreate2(file, temp.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  if (!fresh.valid()) return;
  copy_attributes(old.get(), fresh.get());
  write_payload(type.get(), points_of(space.get()), script,
                [&](hid_t t, const void* data) { H5Dwrite(fresh.get(), t, H5S_ALL, H5S_ALL, H5P_DEFAULT, data); });
  if (H5Ldelete(file, obj.path.c_str(), H5P_DEFAULT) >= 0)
    H5Lmove(file, temp.c_str(), file, obj.path.c_str(), H5P_DEFAULT, H5P_DEFAULT);
}

// Overwrites up to 8 bytes of a dataset's (fixed-size) elements.
void poke_dataset(hid_t file, const Object& obj, Script& script) {
  const h5::Dataset ds(H5Dopen2(file, obj.path.c_str(), H5P_DEFAULT));
  if (!ds.valid()) return;
  const h5::Datatype type(H5Dget_type(ds.get()));
  const h5::Dataspace space(H5Dget_space(ds.get()));
  if (!type.valid() || !space.valid() || H5Tis_variable_str(type.get()) > 0) return;
  const size_t bytes = points_of(space.get()) * H5Tget_size(type.get());
  if (bytes == 0 || bytes > (64u << 20)) return;
  std::vector<uint8_t> data(bytes);
  if (H5Dread(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()) < 0) return;
  const int count = 1 + script.u8() % 8;
  for (int i = 0; i < count; ++i) {
    const size_t at = script.u16() % bytes;
    data[at] = script.u8();
  }
  H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data());
}

void apply(hid_t file, Script& script) {
  for (int edit = 0; edit < 16 && !script.done(); ++edit) {
    const std::vector<Object> objects = objects_of(file);
    if (objects.empty()) return;
    const uint8_t op = script.u8();
    const Object& obj = objects[script.u16() % objects.size()];
    switch (op % 7) {
      case 0:
      case 1:
        set_attribute(file, obj, script);
        break;
      case 2:
        H5Ldelete(file, obj.path.c_str(), H5P_DEFAULT);
        break;
      case 3:
        if (obj.type == H5O_TYPE_DATASET) replace_dataset(file, obj, script);
        break;
      case 4:
        if (obj.type == H5O_TYPE_DATASET) poke_dataset(file, obj, script);
        break;
      case 5: {  // duplicate under a new name in the same group (e.g. a second linear)
        const std::string copy = parent_of(obj.path) + "/" + script.name();
        H5Ocopy(file, obj.path.c_str(), file, copy.c_str(), H5P_DEFAULT, H5P_DEFAULT);
        break;
      }
      case 6: {  // move into another group, keeping the name
        const Object& target = objects[script.u16() % objects.size()];
        if (target.type != H5O_TYPE_GROUP) break;
        const std::string to = (target.path == "." ? "" : target.path + "/") + base_of(obj.path);
        H5Lmove(file, obj.path.c_str(), file, to.c_str(), H5P_DEFAULT, H5P_DEFAULT);
        break;
      }
    }
  }
}

}  // namespace

std::vector<std::byte> apply_hdf5_edits(std::span<const std::byte> base_image, Input script_bytes) {
  h5::quiet_hdf5_errors();
  std::vector<std::byte> image(base_image.begin(), base_image.end());
  {
    const h5::PropertyList fapl(H5Pcreate(H5P_FILE_ACCESS));
    AMLQ_CHECK_HDF5(H5Pset_fapl_core(fapl.get(), 1 << 16, /*backing_store=*/false));
    AMLQ_CHECK_HDF5(H5Pset_file_image(fapl.get(), image.data(), image.size()));
    h5::File file(H5Fopen("amlq-fuzz-image.h5", H5F_ACC_RDWR, fapl.get()));
    if (!file.valid()) fail("the fuzz base file does not open in memory");
    Script script(script_bytes);
    apply(file.get(), script);
    AMLQ_CHECK_HDF5(H5Fflush(file.get(), H5F_SCOPE_GLOBAL));
    const ssize_t size = H5Fget_file_image(file.get(), nullptr, 0);
    if (size <= 0) fail(fmt::format("H5Fget_file_image: {}", size));
    image.assign(static_cast<size_t>(size), std::byte{0});
    if (H5Fget_file_image(file.get(), image.data(), static_cast<size_t>(size)) != size)
      fail("H5Fget_file_image failed");
    if (std::memcmp(image.data(), "\x89HDF\r\n\x1a\n", 8) != 0)
      fail("the file image does not start with the HDF5 superblock");
  }
  // To look at what an input does: AMLQ_FUZZ_DUMP_H5=out.h5 bin/fuzz_model_h5 INPUT, then h5dump out.h5.
  if (const char* dump = std::getenv("AMLQ_FUZZ_DUMP_H5"); dump && *dump) {
    std::ofstream out(dump, std::ios::binary);
    out.write(reinterpret_cast<const char*>(image.data()), static_cast<std::streamsize>(image.size()));
  }
  return image;
}

}  // namespace amlq::fuzz
