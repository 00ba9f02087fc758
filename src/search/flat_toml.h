#pragma once
// A strict parser for the flat TOML subset the recipe files use: top-level
// `key = value` lines with comments; values are integers, floats, booleans,
// basic or literal strings, and arrays of those (which may span lines).
// Tables, dotted keys, dates and inline tables are rejected. Every error is
// one line "<file>:<line>: <what>" (ErrorKind::Input).
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace amlq::toml {

struct Value;
using Array = std::vector<Value>;

struct Value {
  std::variant<int64_t, double, bool, std::string, Array> data;
  int line = 0;  // where the value starts
  std::string type_name() const;  // "integer", "float", "boolean", "string", "array"
};

struct Entry {
  std::string key;
  Value value;
  int line = 0;
};

// Entries in file order; duplicate keys are an error. `source` names the file in errors.
std::vector<Entry> parse_flat(const std::string& text, const std::string& source);

}  // namespace amlq::toml
