// `pagewaste diff BASE NEW`: what changed between two reports, in total
// and per call site. Sites are matched across builds by their symbolized
// frames' function names and files, not by addresses or lines, which move
// with every edit.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "render/report_document.h"

namespace pagewaste {

struct DiffFigure {
  std::string metric;  // a Metrics() name
  uint64_t base = 0;
  uint64_t now = 0;
  // now - base, held to +/- INT64_MAX (a report may hold any count).
  int64_t change() const {
    uint64_t d = now >= base ? now - base : base - now;
    int64_t magnitude = d > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(d);
    return now >= base ? magnitude : -magnitude;
  }
  // The change in percent of base; nullopt when base is 0 and now is not.
  std::optional<double> percent() const;
};

struct DiffSite {
  std::string status;  // "added", "removed" or "changed"
  std::string key;     // hash of the frames' functions and files
  SiteLocation where;
  std::vector<DiffFigure> figures;  // DiffSiteMetrics(), in order
  // The change in one of DiffSiteMetrics().
  int64_t Change(const std::string& metric) const {
    for (const DiffFigure& f : figures)
      if (f.metric == metric) return f.change();
    return 0;
  }
};

struct DiffResult {
  std::string base_name;
  std::string new_name;
  std::vector<DiffFigure> totals;  // allocations, waste, syscalls, peak in pages
  std::vector<DiffSite> sites;     // those whose figures changed, largest change first
  std::optional<double> fail_percent;
  std::vector<std::string> regressions;  // totals that grew past fail_percent
};

// allocations, waste_bytes, syscalls, page_bytes.
const std::vector<std::string>& DiffSiteMetrics();

DiffResult Diff(const ReportDocument& base, const ReportDocument& now,
                std::optional<double> fail_percent);

std::string RenderDiffText(const DiffResult& diff);
std::string RenderDiffJson(const DiffResult& diff);

// "+40,860 B (+10.23%)"
std::string ChangeText(const DiffFigure& f);

}  // namespace pagewaste
