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

std::string turn_mode_name(TurnMode mode) {
  switch (mode) {
    case TurnMode::Off: return "off";
    case TurnMode::On: return "on";
    case TurnMode::Auto: return "auto";
  }
  return "auto";
}

TurnMode parse_turn_mode(std::string_view name) {
  if (name == "off") return TurnMode::Off;
  if (name == "on") return TurnMode::On;
  if (name == "auto") return TurnMode::Auto;
  AMLQ_FAIL(Usage, "--memory-turns must be off, on or auto, got '{}'", name);
}

ErrorMode parse_error_mode(std::string_view name) {
  if (name == "exact") return ErrorMode::Exact;
  if (name == "approx") return ErrorMode::Approximate;
  AMLQ_FAIL(Usage, "--measure-errors must be exact or approx, got '{}'", name);
}

void check_measure_rows(double fraction, int min_rows) {
  if (!(fraction > 0 && fraction <= 1)) AMLQ_FAIL(Usage, "--measure-rows must be in (0, 1], got {}", fraction);
  if (min_rows < 1) AMLQ_FAIL(Usage, "--measure-rows-min must be >= 1, got {}", min_rows);
}

}  // namespace amlq
