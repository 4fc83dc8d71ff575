// A small JSON reader for test data written by Node scripts (scripts/gpu/prepare-data.mjs): objects,
// arrays, numbers, strings (escapes \" \\ \/ \n \t; no \u), true / false / null. Malformed input ends
// the test with a message; a missing key reads as null, and null reads as 0 / "" / empty.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace facesight_test {

class JsonValue {
 public:
  enum Kind { kNull, kBool, kNumber, kString, kArray, kObject };

  static JsonValue Parse(const std::string& text) {
    size_t at = 0;
    JsonValue v = ParseValue(text, at);
    SkipSpace(text, at);
    if (at != text.size()) Die("trailing characters", at);
    return v;
  }
  // Empty (null) when the file cannot be read.
  static JsonValue ParseFile(const std::string& path, bool* found) {
    std::ifstream in(path, std::ios::binary);
    *found = static_cast<bool>(in);
    if (!in) return JsonValue();
    std::stringstream buffer;
    buffer << in.rdbuf();
    return Parse(buffer.str());
  }

  Kind kind() const { return kind_; }
  double Number() const { return number_; }
  bool Bool() const { return kind_ == kBool ? boolean_ : number_ != 0; }
  const std::string& String() const { return string_; }
  size_t size() const { return items_.size(); }
  const JsonValue& operator[](size_t i) const { return i < items_.size() ? items_[i] : Null(); }
  const JsonValue& operator[](const std::string& key) const {
    auto it = members_.find(key);
    return it == members_.end() ? Null() : it->second;
  }
  std::vector<float> Floats() const {
    std::vector<float> out;
    for (const JsonValue& v : items_) out.push_back(static_cast<float>(v.number_));
    return out;
  }

 private:
  static const JsonValue& Null() {
    static const JsonValue null;
    return null;
  }
  [[noreturn]] static void Die(const char* what, size_t at) {
    std::fprintf(stderr, "FATAL: malformed JSON (%s at offset %zu)\n", what, at);
    std::exit(1);
  }
  static void SkipSpace(const std::string& t, size_t& at) {
    while (at < t.size() && (t[at] == ' ' || t[at] == '\n' || t[at] == '\r' || t[at] == '\t')) ++at;
  }
  static std::string ParseString(const std::string& t, size_t& at) {
    std::string s;
    ++at;  // the opening quote
    while (at < t.size() && t[at] != '"') {
      char c = t[at++];
      if (c == '\\') {
        if (at >= t.size()) Die("unterminated escape", at);
        const char e = t[at++];
        c = e == 'n' ? '\n' : e == 't' ? '\t' : e;
        if (e == 'u') Die("\\u escape", at);
      }
      s += c;
    }
    if (at >= t.size()) Die("unterminated string", at);
    ++at;
    return s;
  }
  static JsonValue ParseValue(const std::string& t, size_t& at) {
    SkipSpace(t, at);
    if (at >= t.size()) Die("unexpected end", at);
    JsonValue v;
    const char c = t[at];
    if (c == '{') {
      v.kind_ = kObject;
      ++at;
      SkipSpace(t, at);
      if (at < t.size() && t[at] == '}') return ++at, v;
      for (;;) {
        SkipSpace(t, at);
        if (at >= t.size() || t[at] != '"') Die("expected a key", at);
        const std::string key = ParseString(t, at);
        SkipSpace(t, at);
        if (at >= t.size() || t[at] != ':') Die("expected ':'", at);
        ++at;
        v.members_[key] = ParseValue(t, at);
        SkipSpace(t, at);
        if (at < t.size() && t[at] == ',') { ++at; continue; }
        if (at < t.size() && t[at] == '}') return ++at, v;
        Die("expected ',' or '}'", at);
      }
    }
    if (c == '[') {
      v.kind_ = kArray;
      ++at;
      SkipSpace(t, at);
      if (at < t.size() && t[at] == ']') return ++at, v;
      for (;;) {
        v.items_.push_back(ParseValue(t, at));
        SkipSpace(t, at);
        if (at < t.size() && t[at] == ',') { ++at; continue; }
        if (at < t.size() && t[at] == ']') return ++at, v;
        Die("expected ',' or ']'", at);
      }
    }
    if (c == '"') {
      v.kind_ = kString;
      v.string_ = ParseString(t, at);
      return v;
    }
    if (t.compare(at, 4, "true") == 0) return at += 4, v.kind_ = kBool, v.boolean_ = true, v;
    if (t.compare(at, 5, "false") == 0) return at += 5, v.kind_ = kBool, v;
    if (t.compare(at, 4, "null") == 0) return at += 4, v;
    char* end = nullptr;
    v.number_ = std::strtod(t.c_str() + at, &end);
    if (end == t.c_str() + at) Die("unexpected character", at);
    v.kind_ = kNumber;
    at = static_cast<size_t>(end - t.c_str());
    return v;
  }

  Kind kind_ = kNull;
  bool boolean_ = false;
  double number_ = 0;
  std::string string_;
  std::vector<JsonValue> items_;
  std::map<std::string, JsonValue> members_;
};

}  // namespace facesight_test
