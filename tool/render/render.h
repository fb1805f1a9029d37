// Renderers of the report model. A report's output is written as its
// traces replay: each process's report goes to the writer when its replay
// ends and is let go after, and the output is finished from the combined
// view of them all (combined_report.h); memory holds one process's report
// at a time. Adding a format adds one file here.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "model/combined_report.h"
#include "model/metrics.h"
#include "io/output_file.h"
#include "model/report_model.h"

namespace pagewaste {

struct RenderOptions {
  size_t frames = 8;  // frames shown per call site in text
  size_t top = 0;     // call sites shown per list; 0: all (JSON: the rest in other_sites)
  bool colour = false;  // text: ANSI colour (for a terminal, unless NO_COLOR is set)
  // JSON: each process's lists of sites (its peak's are always there);
  // without them, each process's sites are summed in its other_sites. What
  // check and diff read of traces needs only the combined sites.
  bool process_sites = true;
};

class ReportWriter {
 public:
  virtual ~ReportWriter() = default;
  // Each process's report, in the order of the traces.
  virtual void AddProcess(const Report& report) { (void)report; }
  // The output, from the combined view of every process added, to out;
  // false with *err if it cannot be made whole (what was written is then
  // not the whole output, and must not be taken for it).
  virtual bool Finish(const CombinedReport& combined, TextSink* out, std::string* err) = 0;
};

// Text for people: the combined view of several processes first, then each
// process's own. processes: how many will be added.
std::unique_ptr<ReportWriter> TextWriter(const RenderOptions& options, size_t processes);
std::unique_ptr<ReportWriter> JsonWriter(const RenderOptions& options);
// Collapsed stacks of one metric (a site's, metrics.h), for flame graph tools.
std::unique_ptr<ReportWriter> FoldedWriter(const std::string& metric);
// pprof's profile.proto, gzip-compressed; default_metric names the sample
// type pprof shows first. Finish fails if it cannot be encoded.
std::unique_ptr<ReportWriter> PprofWriter(const std::string& default_metric);
// One self-contained HTML file: summary, timeline, flame graph, tables.
std::unique_ptr<ReportWriter> HtmlWriter();

// Reports already in memory through a writer: each added, then the
// combined view finished; the output, empty where Finish failed.
std::string Render(ReportWriter* writer, const std::vector<Report>& reports);
std::string RenderText(const std::vector<Report>& reports, const RenderOptions& options);
std::string RenderJson(const std::vector<Report>& reports, const RenderOptions& options);

// The pprof sample type for a metric or sample type name; false if none.
bool PprofMetric(const std::string& metric, std::string* sample_type);

}  // namespace pagewaste
