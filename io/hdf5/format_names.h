#pragma once
// The file's spelling of enums and dtypes. Frozen by docs/FORMAT.md: it does not
// follow command-line spellings, so renaming an option never changes the format.
#include <hdf5.h>

#include <optional>
#include <string>
#include <string_view>

#include "io/dtype.h"
#include "lowrank/lowrank_types.h"

namespace amlq::h5 {

std::string file_lowrank_name(LowRankMethod method);  // "none", "svd", "l2qer", "whiten"
std::optional<LowRankMethod> parse_file_lowrank_name(std::string_view name);
std::string file_factor_format_name(FactorFormat format);  // "fp16", "int8"
std::optional<FactorFormat> parse_file_factor_format(std::string_view name);
std::string file_dtype_name(DType dtype);  // numpy spelling; "bfloat16" for BF16
std::optional<DType> parse_file_dtype(std::string_view name);

// The little-endian HDF5 type a passthrough tensor of `dtype` is stored as
// (F16 and BF16 as their uint16 bit patterns).
hid_t passthrough_file_type(DType dtype);

}  // namespace amlq::h5
