// A JSON Schema checker for docs/report.schema.json, enough of the standard for
// it (schema_check.h).
#include "schema_check.h"

#include <fstream>

namespace pagewaste::e2e {
namespace {

using nlohmann::json;

bool HasType(const json& v, const std::string& type) {
  if (type == "object") return v.is_object();
  if (type == "array") return v.is_array();
  if (type == "string") return v.is_string();
  if (type == "boolean") return v.is_boolean();
  if (type == "null") return v.is_null();
  if (type == "integer") return v.is_number_integer();
  if (type == "number") return v.is_number();
  return false;
}

class Checker {
 public:
  explicit Checker(const json& root) : root_(root) {}

  std::string Check(const json& s, const json& v, const std::string& path) {
    if (s.contains("$ref")) {
      std::string ref = s["$ref"];
      const std::string prefix = "#/$defs/";
      return Check(root_["$defs"][ref.substr(prefix.size())], v, path);
    }
    if (s.contains("type")) {
      bool ok = false;
      if (s["type"].is_array()) {
        for (const auto& t : s["type"]) ok = ok || HasType(v, t);
      } else {
        ok = HasType(v, s["type"]);
      }
      if (!ok) return path + ": expected " + s["type"].dump() + ", got " + v.dump();
    }
    if (s.contains("const") && v != s["const"]) return path + ": expected " + s["const"].dump();
    if (s.contains("enum")) {
      bool found = false;
      for (const auto& e : s["enum"]) found = found || e == v;
      if (!found) return path + ": " + v.dump() + " not in " + s["enum"].dump();
    }
    if (s.contains("minimum") && v.is_number() && v.get<double>() < s["minimum"].get<double>())
      return path + ": below minimum";
    if (s.contains("oneOf")) {
      int matches = 0;
      std::string last;
      for (const auto& option : s["oneOf"]) {
        std::string err = Check(option, v, path);
        if (err.empty()) ++matches; else last = err;
      }
      if (matches != 1) return path + ": matches " + std::to_string(matches) + " of oneOf (" + last + ")";
    }
    if (v.is_object()) {
      if (s.contains("required"))
        for (const auto& key : s["required"])
          if (!v.contains(key)) return path + ": missing " + key.get<std::string>();
      const json props = s.value("properties", json::object());
      for (const auto& [key, value] : v.items()) {
        if (props.contains(key)) {
          std::string err = Check(props[key], value, path + "." + key);
          if (!err.empty()) return err;
        } else if (s.contains("additionalProperties") && s["additionalProperties"] == false) {
          return path + ": undocumented field " + key;
        }
      }
    }
    if (v.is_array() && s.contains("minItems") && v.size() < s["minItems"].get<size_t>())
      return path + ": fewer than " + s["minItems"].dump() + " items";
    if (v.is_array() && s.contains("maxItems") && v.size() > s["maxItems"].get<size_t>())
      return path + ": more than " + s["maxItems"].dump() + " items";
    if (v.is_array() && s.contains("items")) {
      for (size_t i = 0; i < v.size(); ++i) {
        std::string err = Check(s["items"], v[i], path + "[" + std::to_string(i) + "]");
        if (!err.empty()) return err;
      }
    }
    return "";
  }

 private:
  const json& root_;
};

}  // namespace

std::string SchemaViolation(const json& schema, const json& value) {
  return Checker(schema).Check(schema, value, "$");
}

const json& ReportSchema() {
  static const json schema = json::parse(std::ifstream(PAGEWASTE_SCHEMA_PATH));
  return schema;
}

}  // namespace pagewaste::e2e
