// A small JSON Schema checker, enough for docs/report.schema.json (type,
// properties, required, additionalProperties: false, items, enum, const,
// oneOf, minimum, minItems, maxItems, local $ref), so that every report the tests produce is
// checked against the documented schema.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace pagewaste::e2e {

// Empty when value conforms; otherwise the first violation, with its path.
std::string SchemaViolation(const nlohmann::json& schema, const nlohmann::json& value);

// docs/report.schema.json, parsed once.
const nlohmann::json& ReportSchema();

}  // namespace pagewaste::e2e
