#include "io/dtype.h"

#include <cstring>

#include "core/error.h"
#include "core/fp16.h"

namespace amlq {

namespace {
struct DTypeEntry {
  DType dtype;
  std::string_view name;
  size_t size;
};
constexpr DTypeEntry kDTypes[] = {
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4}, {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
    {DType::I64, "I64", 8}, {DType::I32, "I32", 4}, {DType::I16, "I16", 2}, {DType::I8, "I8", 1},
    {DType::U32, "U32", 4}, {DType::U16, "U16", 2}, {DType::U8, "U8", 1},
};

template <typename T>
void widen(const std::byte* src, size_t n, float* dst) {
  for (size_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, src + i * sizeof(T), sizeof(T));
    dst[i] = static_cast<float>(v);
  }
}
}  // namespace

size_t dtype_size(DType dtype) { return kDTypes[static_cast<int>(dtype)].size; }
std::string_view dtype_name(DType dtype) { return kDTypes[static_cast<int>(dtype)].name; }

std::optional<DType> parse_dtype(std::string_view name) {
  for (const auto& e : kDTypes)
    if (e.name == name) return e.dtype;
  return std::nullopt;
}

bool is_float(DType dtype) {
  return dtype == DType::F64 || dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16;
}

void convert_to_f32(DType dtype, const std::byte* src, size_t n, float* dst) {
  if (n == 0) return;  // src and dst may be null then, which memcpy does not allow
  switch (dtype) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::F64: widen<double>(src, n, dst); return;
    case DType::F16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = fp16_to_float(h);
      }
      return;
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = bf16_to_float(h);
      }
      return;
    case DType::I64: widen<int64_t>(src, n, dst); return;
    case DType::I32: widen<int32_t>(src, n, dst); return;
    case DType::I16: widen<int16_t>(src, n, dst); return;
    case DType::I8: widen<int8_t>(src, n, dst); return;
    case DType::U32: widen<uint32_t>(src, n, dst); return;
    case DType::U16: widen<uint16_t>(src, n, dst); return;
    case DType::U8: widen<uint8_t>(src, n, dst); return;
  }
  AMLQ_FAIL(Internal, "convert_to_f32: unknown dtype {}", static_cast<int>(dtype));
}

void convert_from_f32(DType dtype, const float* src, size_t n, std::byte* dst) {
  switch (dtype) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) {
        const uint16_t h = float_to_bf16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    case DType::F16:
      for (size_t i = 0; i < n; ++i) {
        const uint16_t h = float_to_fp16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    default: break;
  }
  AMLQ_FAIL(Internal, "convert_from_f32: cannot write dtype {}", dtype_name(dtype));
}

}  // namespace amlq
