// The figures pagewaste reports by name: the one list that the model, every
// renderer, check, diff, --metric and docs/ci.md's table are read from (a
// test holds the table to it). Each is a field of a call site and of a
// summary in the JSON report ("syscalls" is syscalls.total, "syscalls.KIND"
// one kind), except the peaks, which are the whole run's only.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "report_model.h"

namespace pagewaste {

enum class MetricUnit { kCount, kBytes, kNanoseconds };

struct Metric {
  std::string name;
  std::string what;  // a few words for messages and reports
  MetricUnit unit = MetricUnit::kCount;
  // A site's figure; empty for a figure of the whole run only (the peaks).
  std::function<uint64_t(const CallSite&)> of_site;
  // Whether a limit or a diff may name it: the counts that do not move
  // between runs of a deterministic program (not time).
  bool for_limits = true;
  // Its sample type in pprof output; empty: not one.
  std::string pprof_type;

  bool bytes() const { return unit == MetricUnit::kBytes; }
  bool whole_run_only() const { return !of_site; }
};

// Every metric, in the order reports list them.
const std::vector<Metric>& Metrics();
// By name; null for none.
const Metric* FindMetric(const std::string& name);

// A site's figure by metric name. False for a name that is no metric, or a
// whole-run figure.
bool FigureOf(const CallSite& site, const std::string& metric, uint64_t* value);

// The names of the metrics for which keep() holds, comma-separated, for
// messages that list them.
std::string MetricNames(const std::function<bool(const Metric&)>& keep);

}  // namespace pagewaste
