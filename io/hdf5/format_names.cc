#include "io/hdf5/format_names.h"

#include <array>

#include "core/error.h"

namespace amlq::h5 {

namespace {
constexpr std::array kDTypes = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64, DType::I32,
                                DType::I16, DType::I8,  DType::U32, DType::U16,  DType::U8};
constexpr std::array kLowRank = {LowRankMethod::None, LowRankMethod::Svd, LowRankMethod::L2qer, LowRankMethod::Whiten};
}  // namespace

hid_t passthrough_file_type(DType dtype) {
  switch (dtype) {
    case DType::F64:
      return H5T_IEEE_F64LE;
    case DType::F32:
      return H5T_IEEE_F32LE;
    case DType::F16:
    case DType::BF16:
    case DType::U16:
      return H5T_STD_U16LE;
    case DType::I64:
      return H5T_STD_I64LE;
    case DType::I32:
      return H5T_STD_I32LE;
    case DType::I16:
      return H5T_STD_I16LE;
    case DType::I8:
      return H5T_STD_I8LE;
    case DType::U32:
      return H5T_STD_U32LE;
    case DType::U8:
      return H5T_STD_U8LE;
  }
  AMLQ_FAIL(Internal, "unknown dtype {}", static_cast<int>(dtype));
}

std::string file_lowrank_name(LowRankMethod method) {
  switch (method) {
    case LowRankMethod::None:
      return "none";
    case LowRankMethod::Svd:
      return "svd";
    case LowRankMethod::L2qer:
      return "l2qer";
    case LowRankMethod::Whiten:
      return "whiten";
  }
  AMLQ_FAIL(Internal, "unknown low-rank method {}", static_cast<int>(method));
}

std::string file_factor_format_name(FactorFormat format) { return format == FactorFormat::Int8 ? "int8" : "fp16"; }

std::string file_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F64:
      return "float64";
    case DType::F32:
      return "float32";
    case DType::F16:
      return "float16";
    case DType::BF16:
      return "bfloat16";
    case DType::I64:
      return "int64";
    case DType::I32:
      return "int32";
    case DType::I16:
      return "int16";
    case DType::I8:
      return "int8";
    case DType::U32:
      return "uint32";
    case DType::U16:
      return "uint16";
    case DType::U8:
      return "uint8";
  }
  AMLQ_FAIL(Internal, "unknown dtype {}", static_cast<int>(dtype));
}

std::optional<LowRankMethod> parse_file_lowrank_name(std::string_view name) {
  for (LowRankMethod m : kLowRank)
    if (file_lowrank_name(m) == name) return m;
  return std::nullopt;
}

std::optional<FactorFormat> parse_file_factor_format(std::string_view name) {
  if (name == "fp16") return FactorFormat::Fp16;
  if (name == "int8") return FactorFormat::Int8;
  return std::nullopt;
}

std::optional<DType> parse_file_dtype(std::string_view name) {
  for (DType d : kDTypes)
    if (file_dtype_name(d) == name) return d;
  return std::nullopt;
}

}  // namespace amlq::h5
