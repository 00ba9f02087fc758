#pragma once
// Strict reads of values from JSON files amlq did not necessarily write. nlohmann's
// get<int>() truncates 2^32 + 5 to 5 and converting 1e300 to an int is undefined
// behaviour; these check the JSON type and the range and throw one Input error
// "<origin>: field '<what>' ..." instead.
#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>

#include "core/error.h"

namespace amlq {

template <typename T>
T json_value_as(const nlohmann::json& v, std::string_view what, const std::string& origin) {
  auto wrong = [&]() -> T { AMLQ_FAIL(Input, "{}: field '{}' has the wrong type ({})", origin, what, v.dump().substr(0, 200)); };
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) return wrong();
    return v.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    if (!v.is_number_integer()) return wrong();
    const bool fits = v.is_number_unsigned()
                          ? v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max())
                          : v.get<int64_t>() >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
                                (std::is_unsigned_v<T> ||
                                 v.get<int64_t>() <= static_cast<int64_t>(std::numeric_limits<T>::max()));
    if (!fits) AMLQ_FAIL(Input, "{}: field '{}' = {} is out of range", origin, what, v.dump());
    return v.is_number_unsigned() ? static_cast<T>(v.get<uint64_t>()) : static_cast<T>(v.get<int64_t>());
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number()) return wrong();
    const T x = v.get<T>();
    if (!std::isfinite(x)) AMLQ_FAIL(Input, "{}: field '{}' = {} is not finite", origin, what, v.dump());
    return x;
  } else {
    static_assert(std::is_same_v<T, std::string>);
    if (!v.is_string()) return wrong();
    return v.get<std::string>();
  }
}

// j[key] of an object, which must be present (and not null).
inline const nlohmann::json& json_member(const nlohmann::json& j, const char* key, const std::string& origin) {
  if (!j.is_object()) AMLQ_FAIL(Input, "{}: expected a JSON object holding '{}', found {}", origin, key, j.type_name());
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) AMLQ_FAIL(Input, "{}: missing required field '{}'", origin, key);
  return *it;
}

template <typename T>
T json_field(const nlohmann::json& j, const char* key, const std::string& origin) {
  return json_value_as<T>(json_member(j, key, origin), key, origin);
}

}  // namespace amlq
