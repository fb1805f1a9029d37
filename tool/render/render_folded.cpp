// Folded (collapsed) stacks, one line per stack, "outer;...;inner value":
// what flamegraph.pl, inferno and speedscope read. Every process's call
// sites merged (the combined view), so the values sum to the JSON's
// combined totals exactly.
#include <fmt/format.h>

#include <map>
#include <utility>

#include "render.h"

namespace pagewaste {

namespace {

std::string Folded(const CombinedReport& combined, const std::string& metric) {
  std::map<std::string, uint64_t> stacks;  // sorted: the same text every time
  for (const CallSite& site : combined.call_sites) {
    uint64_t value = 0;
    if (!FigureOf(site, metric, &value) || value == 0) continue;
    std::string stack;
    for (auto f = site.frames.rbegin(); f != site.frames.rend(); ++f) {
      std::string name = FrameName(*f);
      // ';' separates frames, and the line ends in a space and the value.
      for (char& c : name)
        if (c == ';' || c == '\n') c = ',';
      stack += (stack.empty() ? "" : ";") + name;
    }
    stacks[stack.empty() ? "(no stack)" : stack] += value;
  }
  std::string out;
  for (const auto& [stack, value] : stacks) out += fmt::format("{} {}\n", stack, value);
  return out;
}

class FoldedReportWriter : public ReportWriter {
 public:
  explicit FoldedReportWriter(std::string metric) : metric_(std::move(metric)) {}
  bool Finish(const CombinedReport& combined, TextSink* out, std::string* /*err*/) override {
    out->Write(Folded(combined, metric_));
    return true;
  }

 private:
  std::string metric_;
};

}  // namespace

std::unique_ptr<ReportWriter> FoldedWriter(const std::string& metric) {
  return std::make_unique<FoldedReportWriter>(metric);
}

}  // namespace pagewaste
