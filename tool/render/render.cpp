// Rendering reports already in memory (render.h).
#include "render.h"

namespace pagewaste {

std::string Render(ReportWriter* writer, const std::vector<Report>& reports) {
  CombinedView view;
  for (const Report& r : reports) {
    writer->AddProcess(r);
    view.Add(r);
  }
  StringSink out;
  std::string err;
  if (!writer->Finish(view.Finish(), &out, &err)) return {};
  return std::move(out.text());
}

std::string RenderText(const std::vector<Report>& reports, const RenderOptions& options) {
  return Render(TextWriter(options, reports.size()).get(), reports);
}

std::string RenderJson(const std::vector<Report>& reports, const RenderOptions& options) {
  return Render(JsonWriter(options).get(), reports);
}

}  // namespace pagewaste
