// Renderers of the report model. Each reads a Report and writes one format;
// adding a format adds one file here.
#pragma once

#include <string>
#include <vector>

#include "report_model.h"

namespace pagewaste {

struct RenderOptions {
  size_t frames = 8;  // frames shown per call site in text
  size_t top = 0;     // call sites shown per list; 0: all (JSON: the rest in other_sites)
  bool colour = false;  // text: ANSI colour (for a terminal, unless NO_COLOR is set)
};

std::string RenderText(const std::vector<Report>& reports, const RenderOptions& options);
// The same without colour, whatever options.colour says.
std::string RenderPlainText(const std::vector<Report>& reports, const RenderOptions& options);
std::string RenderJson(const std::vector<Report>& reports, const RenderOptions& options);
// Collapsed stacks of one metric (FigureOf's names), for flame graph tools.
std::string RenderFolded(const std::vector<Report>& reports, const std::string& metric);
// pprof's profile.proto, gzip-compressed; default_metric names the sample
// type pprof shows first. Empty if it cannot be encoded.
std::string RenderPprof(const std::vector<Report>& reports, const std::string& default_metric);
// One self-contained HTML file: summary, timeline, flame graph, tables.
std::string RenderHtml(const std::vector<Report>& reports);
// The pprof sample type for a metric or sample type name; false if none.
bool PprofMetric(const std::string& metric, std::string* sample_type);

}  // namespace pagewaste
