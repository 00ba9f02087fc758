#pragma once
// `amlq inspect FILE.h5`: the header, one row per quantized linear and totals.
#include <string>

namespace amlq {

// Reads the file's metadata only (no tensor data) and returns the report text.
// Throws Input naming the file if it is not a readable amlq model.
std::string summarize_quantized_model(const std::string& path);

}  // namespace amlq
