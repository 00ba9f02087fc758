#include "pipeline/quantize_options.h"

#include "core/error.h"

namespace amlq {

std::string sequential_mode_name(SequentialMode mode) {
  switch (mode) {
    case SequentialMode::None: return "none";
    case SequentialMode::Layer: return "layer";
    case SequentialMode::True: return "true";
  }
  return "none";
}

SequentialMode parse_sequential_mode(std::string_view name) {
  if (name == "none") return SequentialMode::None;
  if (name == "layer") return SequentialMode::Layer;
  if (name == "true") return SequentialMode::True;
  AMLQ_FAIL(Usage, "--sequential '{}': expected none, layer or true", name);
}

}  // namespace amlq
