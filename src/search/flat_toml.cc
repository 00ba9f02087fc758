#include "search/flat_toml.h"

#include <cerrno>
#include <cstdlib>

#include "core/error.h"

namespace amlq::toml {

std::string Value::type_name() const {
  static const char* const names[] = {"integer", "float", "boolean", "string", "array"};
  return names[data.index()];
}

namespace {

class Parser {
 public:
  Parser(const std::string& text, const std::string& source) : s_(text), source_(source) {}

  std::vector<Entry> parse() {
    std::vector<Entry> entries;
    for (;;) {
      skip_blank_lines();
      if (at_end()) break;
      const int key_line = line_;
      if (peek() == '[') fail("tables ('[...]') are not supported in this file");
      std::string key = parse_key();
      skip_spaces();
      expect('=', "expected '=' after key '" + key + "'");
      skip_spaces();
      if (at_end() || peek() == '\n' || peek() == '#') fail("key '" + key + "' has no value");
      Value value = parse_value(key);
      end_of_line(key);
      for (const auto& e : entries)
        if (e.key == key) fail("duplicate key '" + key + "' (first set on line " + std::to_string(e.line) + ")");
      entries.push_back(Entry{std::move(key), std::move(value), key_line});
    }
    return entries;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    AMLQ_FAIL(Input, "{}:{}: {}", source_, line_, what);
  }
  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return s_[pos_]; }
  char get() {
    const char c = s_[pos_++];
    if (c == '\n') ++line_;
    return c;
  }
  void expect(char c, const std::string& what) {
    if (at_end() || peek() != c) fail(what);
    get();
  }
  void skip_spaces() {
    while (!at_end() && (peek() == ' ' || peek() == '\t')) get();
  }
  void skip_comment() {
    if (!at_end() && peek() == '#')
      while (!at_end() && peek() != '\n') get();
  }
  // Spaces, comments, newlines (inside arrays and between entries).
  void skip_blank_lines() {
    for (;;) {
      skip_spaces();
      skip_comment();
      if (!at_end() && peek() == '\r') get();
      if (at_end() || peek() != '\n') return;
      get();
    }
  }
  void end_of_line(const std::string& key) {
    skip_spaces();
    skip_comment();
    if (!at_end() && peek() == '\r') get();
    if (!at_end() && peek() != '\n') fail("unexpected text after the value of '" + key + "'");
  }

  static bool is_bare(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  }
  std::string parse_key() {
    std::string key;
    while (!at_end() && is_bare(peek())) key += get();
    if (key.empty()) fail(std::string("expected a key, found '") + peek() + "'");
    if (!at_end() && peek() == '.') fail("dotted keys ('" + key + ".') are not supported");
    return key;
  }

  Value parse_value(const std::string& key, int depth = 0) {
    Value v;
    v.line = line_;
    const char c = peek();
    if (c == '[') {
      // The recursion is bounded so that a file of '[' cannot overflow the stack.
      if (depth >= kMaxArrayDepth)
        fail("arrays nested deeper than " + std::to_string(kMaxArrayDepth) + " in the value of '" + key + "'");
      get();
      Array items;
      for (;;) {
        skip_blank_lines();
        if (at_end()) fail("unterminated array for '" + key + "'");
        if (peek() == ']') break;
        items.push_back(parse_value(key, depth + 1));
        skip_blank_lines();
        if (at_end()) fail("unterminated array for '" + key + "'");
        if (peek() == ',') {
          get();
          continue;
        }
        if (peek() != ']') fail("expected ',' or ']' in the array of '" + key + "'");
      }
      get();
      v.data = std::move(items);
    } else if (c == '"' || c == '\'') {
      v.data = parse_string(key);
    } else {
      std::string word;
      while (!at_end() && peek() != ',' && peek() != ']' && peek() != '#' && peek() != '\n' && peek() != '\r' &&
             peek() != ' ' && peek() != '\t')
        word += get();
      v.data = parse_scalar(word, key);
    }
    return v;
  }

  std::string parse_string(const std::string& key) {
    const char quote = get();
    std::string out;
    for (;;) {
      if (at_end() || peek() == '\n') fail("unterminated string for '" + key + "'");
      char c = get();
      if (c == quote) return out;
      if (c == '\\' && quote == '"') {
        if (at_end()) fail("unterminated string for '" + key + "'");
        const char e = get();
        switch (e) {
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case 'n': out += '\n'; break;
          case 't': out += '\t'; break;
          default: fail(std::string("unsupported escape '\\") + e + "' in the value of '" + key + "'");
        }
        continue;
      }
      out += c;
    }
  }

  std::variant<int64_t, double, bool, std::string, Array> parse_scalar(const std::string& word,
                                                                        const std::string& key) {
    if (word == "true") return true;
    if (word == "false") return false;
    std::string digits;
    for (char c : word)
      if (c != '_') digits += c;
    if (digits.empty()) fail("missing value for '" + key + "'");
    const char* begin = digits.c_str();
    char* end = nullptr;
    errno = 0;
    const long long i = std::strtoll(begin, &end, 10);
    if (*end == '\0' && errno == 0) return static_cast<int64_t>(i);
    errno = 0;
    const double d = std::strtod(begin, &end);
    const bool plain = digits.find_first_not_of("+-0123456789.eE") == std::string::npos;
    if (*end == '\0' && errno == 0 && plain) return d;
    fail("malformed value '" + word + "' for '" + key + "'");
  }

  static constexpr int kMaxArrayDepth = 16;
  const std::string& s_;
  const std::string& source_;
  size_t pos_ = 0;
  int line_ = 1;
};

}  // namespace

std::vector<Entry> parse_flat(const std::string& text, const std::string& source) {
  return Parser(text, source).parse();
}

}  // namespace amlq::toml
