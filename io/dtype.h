#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace amlq {

enum class DType : uint8_t { F64, F32, F16, BF16, I64, I32, I16, I8, U32, U16, U8 };

size_t dtype_size(DType dtype);
std::string_view dtype_name(DType dtype);  // safetensors spelling: "F32", "BF16", ...
std::optional<DType> parse_dtype(std::string_view name);
bool is_float(DType dtype);

// Converts n elements of `src` (of dtype) to float32.
void convert_to_f32(DType dtype, const std::byte* src, size_t n, float* dst);
// Converts n float32 values to dtype F32, F16 or BF16 (round to nearest even,
// NaN stays NaN); any other dtype is an Internal error.
void convert_from_f32(DType dtype, const float* src, size_t n, std::byte* dst);

}  // namespace amlq
