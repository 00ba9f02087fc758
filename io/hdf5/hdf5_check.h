#pragma once
// HDF5 plugs into the one checking-macro family of core/check.h, and owns its
// identifiers through small RAII handles. HDF5 reports failure as a negative
// herr_t / hid_t / htri_t; the message is taken from HDF5's error stack and
// squeezed onto one line. HDF5's own automatic stack printing is switched off
// (quiet_hdf5_errors) so that line is the only thing the user sees.
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <utility>

#include "core/check.h"

namespace amlq {

struct Hdf5Status {
  int64_t code;  // any herr_t, hid_t, htri_t or ssize_t an HDF5 call returns
};

template <>
struct StatusTraits<Hdf5Status> {
  static bool ok(Hdf5Status s) { return s.code >= 0; }
  static std::string describe(Hdf5Status s);  // the current error stack, one line
  // Readers rewrap failures as Input errors naming their file (model_reader.cc).
  static constexpr ErrorKind kind = ErrorKind::Output;
  static constexpr const char* library = "HDF5";
};

namespace h5 {

// Turns off HDF5's printing of error stacks to stderr (per thread in thread-safe
// builds, so every public entry point calls it).
void quiet_hdf5_errors();

// Checks an identifier-returning call and passes the identifier on.
inline hid_t checked_id(hid_t id, const char* expr, const char* file, int line) {
  check_status(Hdf5Status{id}, expr, file, line);
  return id;
}

// Owns one HDF5 identifier; Close is the matching H5?close.
template <herr_t (*Close)(hid_t)>
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  ~Handle() { reset(); }
  Handle(Handle&& other) noexcept : id_(std::exchange(other.id_, H5I_INVALID_HID)) {}
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, H5I_INVALID_HID);
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  // Closes now and reports a failure (a file close flushes, and can fail).
  void close() {
    const hid_t id = std::exchange(id_, H5I_INVALID_HID);
    if (id >= 0) AMLQ_CHECK_HDF5(Close(id));
  }

 private:
  void reset() {
    if (id_ >= 0) Close(id_);  // destructors cannot report; close() can
    id_ = H5I_INVALID_HID;
  }
  hid_t id_ = H5I_INVALID_HID;
};

using File = Handle<H5Fclose>;
using Group = Handle<H5Gclose>;
using Dataset = Handle<H5Dclose>;
using Dataspace = Handle<H5Sclose>;
using Attribute = Handle<H5Aclose>;
using PropertyList = Handle<H5Pclose>;
using Datatype = Handle<H5Tclose>;

}  // namespace h5
}  // namespace amlq

// AMLQ_HDF5_ID(H5Fopen(...)): checks through AMLQ_CHECK's machinery and yields the id.
#define AMLQ_HDF5_ID(CALL) ::amlq::h5::checked_id((CALL), #CALL, __FILE__, __LINE__)
