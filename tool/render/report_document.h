// A report as `check` and `diff` read it: the JSON of schema_version 2
// (docs/report.schema.json), read from a saved `report --format json`, or
// made here from traces. Loading validates every field they use, so that a
// malformed report is one message naming the field, never a crash.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model/program_code.h"
#include "model/metrics.h"
#include "model/report_model.h"

namespace pagewaste {

// The schema_version of the JSON reports this build writes.
inline constexpr int kSchemaVersion = 6;

// Where a site is, for messages and CI formats: its first frame in the
// program's own code (LocationIndex, program_code.h), with the file as
// reports show it, and the label that tells it from the report's other
// sites.
struct SiteLocation {
  std::string function;
  std::string file;
  int line = 0;
  std::string module;
  std::string label;
  // The label, or "page_alloc (examples/page_per_object.c:14)".
  std::string Text() const;
};

class ReportDocument {
 public:
  // paths: one JSON report (schema_version 2), or traces (several are
  // combined). False with *err naming the file and, for a malformed
  // report, the field.
  bool Load(const std::vector<std::string>& paths, std::string* err);
  // Which frames are the program's (before Load or Parse).
  void SetCodeRules(const CodeRules& rules);
  // A JSON report from memory; name stands for its path in messages.
  bool Parse(const std::string& text, const std::string& name, std::string* err);

  const std::string& name() const { return name_; }
  const nlohmann::json& combined() const { return doc_["combined"]; }
  const nlohmann::json& summary() const { return doc_["combined"]["summary"]; }
  const nlohmann::json& call_sites() const { return doc_["combined"]["call_sites"]; }
  // Innermost first, classified; validated, so any site's stack can be
  // asked for.
  Stack Frames(const nlohmann::json& site) const;
  SiteLocation Location(const nlohmann::json& site) const;
  // The sites that held the most pages at the peak, in the process that
  // held the most at the combined peak: who made a peak. Each has key,
  // stack and page_bytes; empty where the report does not say.
  std::vector<const nlohmann::json*> PeakSites() const;

 private:
  bool Validate(std::string* err) const;
  // Labels the sites (SiteLabels) by this document's code rules.
  void NameSites();
  std::string name_;
  nlohmann::json doc_;
  CodeRules rules_;
  CodeOrigin origin_{CodeRules{}};
  std::map<std::string, std::string> labels_;  // by site key
};

// The entries of a JSON report's `frames` that a site's `stack` names
// (an index into its `stacks`, or null), innermost first.
nlohmann::json StackFrames(const nlohmann::json& doc, const nlohmann::json& stack);

// A metric of a summary or a call site (validated by Load).
uint64_t MetricValue(const nlohmann::json& object, const std::string& metric);

}  // namespace pagewaste
