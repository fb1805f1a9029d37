// `pagewaste check`: holds a report to limits (docs/ci.md). A limit names
// a metric (model/metrics.h), for the whole run or for the call sites
// that match a pattern, and a maximum: absolute, or relative to a baseline
// report. Suppressions take the sites they match out of every figure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/program_code.h"
#include "render/report_document.h"

namespace pagewaste {

// Matches a call site when one of its frames matches every field given.
struct SitePattern {
  std::string function;      // glob (fnmatch) on the demangled name
  std::string location;      // "file" or "file:line", as the budget gives it
  std::string file;          // location's file, by its trailing path components
  int line = 0;              // location's line; 0: any
  std::string module;        // glob on the module's path or file name
  std::string Text() const;  // "function page_alloc*"
};

struct Limit {
  std::string name;  // how outputs name it; by default metric and scope
  std::string metric;
  std::optional<SitePattern> site;  // none: the whole run
  std::optional<uint64_t> max;      // absolute
  // Relative: the baseline's figure, plus the larger of percent of it and
  // allowance, so that a small figure does not flap.
  bool relative = false;
  double percent = 0;
  uint64_t allowance = 0;
};

struct Suppression {
  SitePattern site;
  std::string reason;
};

struct Budget {
  std::vector<Limit> limits;
  std::vector<Suppression> suppressions;
  // "code": {"own": [...], "library": [...]}: patterns that say which
  // frames are the program's (program_code.h); its source_root is unused.
  CodeRules code;
  // "allow_incomplete": true (or --allow-incomplete): a trace that is not
  // complete (lost events, cut short, corrupt) does not fail the check by
  // itself. Without it, it does: its figures are not the run's.
  bool allow_incomplete = false;
};

// A budget file (JSON). False with *err naming the field at fault, e.g.
// "limits[1].max: expected a count or a size such as 64K".
bool ParseBudget(const std::string& text, Budget* budget, std::string* err);

struct SiteFigure {
  std::string key;
  SiteLocation where;
  uint64_t value = 0;
};

struct LimitResult {
  std::string name;
  std::string metric;
  std::string scope;  // "whole run", or the site pattern
  bool bytes = false;
  uint64_t value = 0;
  uint64_t threshold = 0;
  std::optional<uint64_t> baseline;
  bool passed = true;
  // The sites that make up the value, largest first (at most 20): the call
  // sites that caused an exceeded limit.
  std::vector<SiteFigure> sites;
};

struct SuppressionResult {
  std::string pattern;
  std::string reason;
  std::vector<SiteFigure> sites;  // every site it took out (value: waste_bytes)
};

struct CheckResult {
  std::string input;
  std::vector<LimitResult> limits;
  std::vector<SuppressionResult> suppressions;
  size_t failed() const;
};

// False with *err for a limit the report cannot answer (a relative limit
// without a baseline, a peak for a call site).
bool EvaluateBudget(const ReportDocument& report, const ReportDocument* baseline,
                    const Budget& budget, CheckResult* result, std::string* err);

// "pagewaste check: FAIL: 1 of 3 limits exceeded" and a line for each limit.
std::string RenderCheckText(const CheckResult& result);

// A figure as outputs write it: "4,094,000 B" or "1,000".
std::string FigureText(uint64_t value, bool bytes);

}  // namespace pagewaste
