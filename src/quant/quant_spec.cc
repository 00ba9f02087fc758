#include "quant/quant_spec.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include <fmt/format.h>

#include "core/error.h"
#include "quant/packed_format.h"

namespace amlq {
namespace {

std::string percent_text(double fraction) {
  // Shortest text that parses back to the same fraction (25, 12.5, 33.333...).
  const double pct = fraction * 100.0;
  for (int digits = 0; digits <= 12; ++digits) {
    std::string s = fmt::format("{:.{}f}", pct, digits);
    if (std::abs(std::stod(s) - pct) <= 1e-9 * std::max(1.0, pct)) return s;
  }
  return fmt::format("{}", pct);
}

bool consume_suffix(std::string_view& s, std::string_view suffix) {
  if (s.size() > suffix.size() && s.substr(s.size() - suffix.size()) == suffix) {
    s.remove_suffix(suffix.size());
    return true;
  }
  return false;
}

template <typename T>
bool parse_number(std::string_view text, T& out) {
  if (text.empty()) return false;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

QuantPart parse_part(std::string_view text, std::string_view label, bool multi) {
  auto bad = [&](std::string_view why) -> QuantPart {
    AMLQ_FAIL(Usage, "bad quantization spec '{}': {} (expected e.g. 4b-g128, 3b-row, 25%4b-g64+75%3b-g128)", label,
              why);
  };
  QuantPart part;
  const auto pct = text.find('%');
  if (pct != std::string_view::npos) {
    double p = 0;
    if (!parse_number(text.substr(0, pct), p) || !(p > 0) || p > 100) return bad("percentage must be in (0, 100]");
    part.fraction = p / 100.0;
    text.remove_prefix(pct + 1);
  } else if (multi) {
    return bad("every part of a mixed spec needs a percentage");
  }
  const auto b = text.find("b-");
  if (b == std::string_view::npos) return bad("missing '<bits>b-'");
  if (!parse_number(text.substr(0, b), part.bits)) return bad("bits is not an integer");
  const std::string_view group = text.substr(b + 2);
  if (group == "row") {
    part.group = 0;
  } else if (group.size() > 1 && group[0] == 'g') {
    if (!parse_number(group.substr(1), part.group) || part.group <= 0) return bad("group size must be positive");
  } else {
    return bad("group must be g<N> or row");
  }
  return part;
}

}  // namespace

std::string QuantSpec::label() const {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    const auto& p = parts[i];
    if (i) out += '+';
    if (parts.size() > 1 || p.fraction != 1.0) out += percent_text(p.fraction) + "%";
    out += p.group == 0 ? fmt::format("{}b-row", p.bits) : fmt::format("{}b-g{}", p.bits, p.group);
  }
  if (symmetric) out += "-sym";
  if (!act_order) out += "-noact";
  if (static_groups) out += "-static";
  return out;
}

QuantSpec QuantSpec::parse(std::string_view label) {
  QuantSpec spec;
  std::string_view rest = label;
  // Suffixes may come in any order after the parts.
  for (bool found = true; found;) {
    found = false;
    if (consume_suffix(rest, "-sym")) spec.symmetric = found = true;
    if (consume_suffix(rest, "-noact")) {
      spec.act_order = false;
      found = true;
    }
    if (consume_suffix(rest, "-static")) spec.static_groups = found = true;
  }
  if (rest.empty()) AMLQ_FAIL(Usage, "bad quantization spec '{}': empty", label);
  spec.parts.clear();
  const bool multi = rest.find('+') != std::string_view::npos;
  size_t start = 0;
  while (true) {
    const size_t plus = rest.find('+', start);
    spec.parts.push_back(parse_part(rest.substr(start, plus == std::string_view::npos ? plus : plus - start), label,
                                    multi));
    if (plus == std::string_view::npos) break;
    start = plus + 1;
  }
  double sum = 0;
  for (const auto& p : spec.parts) sum += p.fraction;
  if (std::abs(sum - 1.0) > 1e-6)
    AMLQ_FAIL(Usage, "bad quantization spec '{}': the part percentages sum to {}%, not 100%", label, sum * 100);
  return spec;
}

std::vector<std::pair<int, int>> QuantSpec::part_columns(int cols) const {
  // Each boundary is rounded to the nearest whole group of the part it closes
  // (for two parts: a multiple of the first part's group size), so every part
  // but the last holds only full groups; only the last part may end with a
  // shorter group. A boundary falls back to plain rounding when the aligned one
  // would leave this part or a later one without columns (a part narrower
  // than its group is then rejected by validate, not silently widened). Every
  // part keeps at least one column whenever cols >= the number of parts.
  std::vector<std::pair<int, int>> ranges;
  const int count = static_cast<int>(parts.size());
  double cumulative = 0;
  int begin = 0;
  for (int i = 0; i < count; ++i) {
    cumulative += parts[i].fraction;
    int end = cols;
    if (i + 1 < count) {
      const double target = cumulative * cols;
      const int lowest = std::min(begin + 1, cols);
      const int highest = std::max(lowest, cols - (count - 1 - i));  // one column for each later part
      end = static_cast<int>(std::llround(target));
      const int group = parts[i].group;
      if (group > 0) {
        const long long whole = std::llround((target - begin) / group);
        const long long aligned = begin + whole * group;
        if (whole >= 1 && aligned <= highest) end = static_cast<int>(aligned);
      }
      end = std::clamp(end, lowest, highest);
    }
    ranges.emplace_back(begin, end);
    begin = end;
  }
  return ranges;
}

void QuantSpec::validate(int rows, int cols, const std::string& layer_name) const {
  const std::string where = fmt::format("layer '{}' [{} x {}]", layer_name, rows, cols);
  const std::string what = label();
  if (rows <= 0 || cols <= 0) AMLQ_FAIL(Input, "{}: cannot quantize an empty matrix", where);
  if (parts.empty()) AMLQ_FAIL(Input, "{}: spec has no parts", where);
  double sum = 0;
  for (const auto& p : parts) {
    if (!packed::valid_bits(p.bits))
      AMLQ_FAIL(Input, "{}: spec {} has {} bits, supported are {}..{}", where, what, p.bits, packed::kMinBits,
                packed::kMaxBits);
    if (p.group < 0) AMLQ_FAIL(Input, "{}: spec {} has a negative group size", where, what);
    if (!(p.fraction > 0)) AMLQ_FAIL(Input, "{}: spec {} has a part with fraction {}", where, what, p.fraction);
    sum += p.fraction;
  }
  if (std::abs(sum - 1.0) > 1e-6) AMLQ_FAIL(Input, "{}: spec {} fractions sum to {}, not 1", where, what, sum);
  if (static_groups && parts.size() != 1)
    AMLQ_FAIL(Input, "{}: spec {}: static groups need a single part", where, what);
  const auto ranges = part_columns(cols);
  for (size_t i = 0; i < parts.size(); ++i) {
    const int width = ranges[i].second - ranges[i].first;
    if (width <= 0)
      AMLQ_FAIL(Input, "{}: spec {}: part {} gets no columns", where, what, i + 1);
    // A group wider than its part would be a whole-row group under another
    // name (and cost accounting would be misleading): ask for "row" instead.
    if (parts[i].group > width)
      AMLQ_FAIL(Input, "{}: spec {}: group size {} exceeds the {} columns of part {} (use a smaller group or 'row')",
                where, what, parts[i].group, width, i + 1);
  }
}

}  // namespace amlq
