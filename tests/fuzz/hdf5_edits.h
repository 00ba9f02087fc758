#pragma once
// Structure-aware fuzzing of amlq's HDF5 readers. The fuzz input is an edit
// script applied, through the HDF5 API, to a copy of a valid amlq file: set an
// attribute to another type, size or value; delete one; delete, duplicate or
// move a link; give a dataset another shape or element type; overwrite bytes of
// a dataset. libhdf5 writes the result, so it is a well-formed HDF5 file whose
// content is hostile, which is where amlq's own reader code can go wrong.
#include <cstddef>
#include <span>
#include <vector>

#include "tests/fuzz/fuzz_target.h"

namespace amlq::fuzz {

// The edited file image. The script is read byte by byte; at most 16 edits.
// With AMLQ_FUZZ_DUMP_H5=<path> set, the image is also written there (h5dump it).
std::vector<std::byte> apply_hdf5_edits(std::span<const std::byte> base_image, Input script);

}  // namespace amlq::fuzz
