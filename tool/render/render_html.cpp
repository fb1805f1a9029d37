// The HTML report: one file that works offline. The page (tool/html/
// report.html, compiled in) holds its style and script; this fills in the
// data, aggregated so that the file stays small for a large trace: the
// figures, the timeline's samples, a tree of stacks pruned to the frames that
// hold at least 1/2000 of some measure, the first call sites, the what-if
// tables. No event is embedded.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <map>

#include "render.h"

namespace pagewaste {

extern const char* const kHtmlTemplate;  // html_template.cpp, generated

namespace {

using json = nlohmann::ordered_json;

// The flame graph's measures, by metric name (metrics.h), the first shown
// first.
constexpr const char* kMeasures[] = {"page_waste_bytes", "allocations", "page_bytes", "syscalls"};
constexpr size_t kMeasureCount = sizeof kMeasures / sizeof kMeasures[0];
constexpr uint64_t kPruneShare = 2000;  // keep frames holding >= 1/2000 of a measure

struct Node {
  size_t name = 0;
  uint64_t values[kMeasureCount] = {};
  std::map<size_t, Node> children;  // by name
};

class Flame {
 public:
  void Add(const CallSite& site) {
    uint64_t values[kMeasureCount];
    for (size_t m = 0; m < kMeasureCount; ++m) FigureOf(site, kMeasures[m], &values[m]);
    Node* node = &root_;
    Charge(node, values);
    for (auto f = site.frames.rbegin(); f != site.frames.rend(); ++f) {
      size_t name = Name(FrameName(*f));
      node = &node->children[name];
      node->name = name;
      Charge(node, values);
    }
  }

  json Json() {
    root_.name = Name("all");
    json metrics = json::array();
    for (const char* name : kMeasures) {
      const Metric& m = *FindMetric(name);
      metrics.push_back({{"label", m.what}, {"bytes", m.bytes()}});
    }
    return {{"metrics", metrics}, {"root", NodeJson(root_)}, {"names", names_}};
  }

 private:
  static void Charge(Node* node, const uint64_t* values) {
    for (size_t m = 0; m < kMeasureCount; ++m) node->values[m] += values[m];
  }

  size_t Name(const std::string& name) {
    auto [it, fresh] = name_index_.emplace(name, names_.size());
    if (fresh) names_.push_back(name);
    return it->second;
  }

  bool Kept(const Node& node) const {
    for (size_t m = 0; m < kMeasureCount; ++m)
      if (node.values[m] && node.values[m] * kPruneShare >= root_.values[m]) return true;
    return false;
  }

  json NodeJson(const Node& node) {
    json j = json::array({node.name});
    for (uint64_t v : node.values) j.push_back(v);
    json kids = json::array();
    for (const auto& [name, child] : node.children)
      if (Kept(child)) kids.push_back(NodeJson(child));
    j.push_back(kids);
    return j;
  }

  Node root_;
  std::vector<std::string> names_;
  std::map<std::string, size_t> name_index_;
};

json Card(const char* label, uint64_t value, bool bytes, bool hot = false, std::string note = "") {
  return {{"label", label}, {"value", value}, {"bytes", bytes}, {"hot", hot}, {"note", note}};
}

// "page_per_object (pid 4242), ..." for the page's title.
std::string Title(const std::vector<Report>& reports) {
  std::string title;
  for (const Report& r : reports) {
    std::string exe = r.process.header.exe.substr(r.process.header.exe.rfind('/') + 1);
    title +=
        fmt::format("{}{} (pid {})", title.empty() ? "" : ", ", exe, r.process.header.process.pid);
    if (title.size() > 120) {
      title += fmt::format(" and {} more", reports.size() - 1);
      break;
    }
  }
  return title;
}

// The figures the page leads with.
json Cards(const CombinedReport& c) {
  const CostTotals& s = c.summary;
  return json::array(
      {Card("page-rounding waste", s.page_waste_bytes, true, s.page_waste_bytes > 0,
            fmt::format("{:.2f}% of bytes in pages", s.page_waste_percent())),
       Card("bytes in pages", s.page_bytes, true, false,
            fmt::format("in {} own mappings", GroupDigits(s.own_mappings))),
       Card("requested", s.requested_bytes, true),
       Card("allocations", s.allocations, false, false,
            fmt::format("{} direct mappings", GroupDigits(s.mappings))),
       Card("system calls", SumSyscalls(s.syscalls), false, s.syscalls_per_call() >= 0.5,
            fmt::format("{:.3g} per call", s.syscalls_per_call())),
       Card("peak in pages", c.peak.page_bytes, true),
       Card("live at exit", c.leaked_bytes, true, false,
            "in " + Counted(c.leaked_allocations, "block or mapping", "blocks and mappings")),
       Card("processes", c.processes, false)});
}

json Processes(const std::vector<Report>& reports) {
  json processes = json::array();
  for (const Report& r : reports) {
    std::string command;
    for (const std::string& a : r.process.header.argv) command += (command.empty() ? "" : " ") + a;
    processes.push_back({{"pid", r.process.header.process.pid},
                         {"command", command + ProcessImageNote(r, reports)}});
  }
  return processes;
}

// A trace that is not complete is said before any figure.
json Warnings(const std::vector<Report>& reports) {
  json warnings = json::array();
  for (const Report& r : reports)
    if (r.process.status != TraceStatus::kComplete)
      warnings.push_back(fmt::format("pid {}: the trace is {}: {}; figures cover what it holds",
                                     r.process.header.process.pid,
                                     TraceStatusName(r.process.status), r.process.status_message));
  return warnings;
}

// The timeline, what-if and memory tables of the process that held the
// most pages (the only one, usually).
struct ProcessTables {
  json timeline, what_if, memory_went;
};

ProcessTables LargestProcessTables(const CombinedReport& c) {
  const std::vector<Report>& reports = c.each;
  const Report* largest = reports.empty() ? nullptr : &reports[c.largest];
  json samples = json::array();
  json page_sizes = json::array(), allocators = json::array(), went = json::array();
  if (largest) {
    for (const TimelineSample& t : largest->timeline)
      samples.push_back({t.start_ns, t.live_bytes, t.page_bytes});
    for (const PageSizeResult& w : largest->what_if_page_sizes)
      page_sizes.push_back({{"page_size", w.page_size},
                            {"page_bytes", w.page_bytes},
                            {"page_waste_bytes", w.page_waste_bytes},
                            {"peak_page_bytes", w.peak_page_bytes}});
    for (const AllocatorResult& a : largest->what_if_allocators)
      allocators.push_back({{"model", AllocatorModelName(a.model)},
                            {"peak_page_bytes", a.peak_page_bytes},
                            {"page_waste_bytes", a.page_waste_bytes},
                            {"syscalls", a.syscalls}});
    const MemoryReconciliation& m = largest->memory_went;
    went =
        json::array({json::array({"requested from malloc and co", m.requested_bytes}),
                     json::array({"allocator slack", m.allocator_slack_bytes}),
                     json::array({"page rounding of malloc's own mappings", m.page_rounding_bytes}),
                     json::array({"direct mappings and reservations made accessible, in whole pages", m.direct_mapping_bytes}),
                     json::array({"held by the program", m.total_bytes})});
    if (m.kept_known)
      went.push_back(
          json::array({"kept by the brk heap beyond its live blocks", m.kept_after_free_bytes}));
  }
  ProcessTables tables;
  tables.timeline = {{"interval_ns", largest ? largest->timeline_interval_ns : 0},
                     {"samples", samples},
                     {"peak",
                      {{"time_ns", largest ? largest->peak.time_ns : 0},
                       {"page_bytes", largest ? largest->peak_mapped_bytes : 0}}}};
  tables.what_if = {{"page_sizes", page_sizes}, {"allocators", allocators}};
  tables.memory_went = went;
  return tables;
}

// The table of call sites, the first 100.
json Sites(const CombinedReport& c) {
  json sites = json::array();
  for (const CallSite& site : ShownSites(c.call_sites, 100).sites)
    sites.push_back({{"where", site.label},
                     {"waste", site.cost.waste_bytes()},
                     {"page_bytes", site.cost.page_bytes},
                     {"requested", site.cost.requested_bytes},
                     {"allocations", site.cost.allocations},
                     {"syscalls", SumSyscalls(site.cost.syscalls)},
                     {"per_call", site.cost.syscalls_per_call()},
                     {"leaked", site.leaked_bytes}});
  return sites;
}

std::string Html(const CombinedReport& c) {
  json d;
  d["title"] = Title(c.each);
  d["cards"] = Cards(c);
  d["processes"] = Processes(c.each);
  d["warnings"] = Warnings(c.each);
  ProcessTables tables = LargestProcessTables(c);
  d["timeline"] = tables.timeline;
  Flame flame;
  for (const CallSite& site : c.call_sites) flame.Add(site);
  d["flame"] = flame.Json();
  d["sites"] = Sites(c);
  d["what_if"] = tables.what_if;
  d["memory_went"] = tables.memory_went;
  // Inside a <script> element: no "<" at all, so that no "</script>" or
  // "<!--" from a symbol name can end it.
  std::string data;
  for (char ch : d.dump(-1, ' ', false, json::error_handler_t::replace))
    data += ch == '<' ? std::string("\\u003c") : std::string(1, ch);
  std::string page = kHtmlTemplate;
  const std::string slot = "/*PAGEWASTE_DATA*/";
  size_t at = page.find(slot);
  if (at != std::string::npos) page.replace(at, slot.size(), data);
  return page;
}

class HtmlReportWriter : public ReportWriter {
 public:
  bool Finish(const CombinedReport& combined, TextSink* out, std::string* /*err*/) override {
    out->Write(Html(combined));
    return true;
  }
};

}  // namespace

std::unique_ptr<ReportWriter> HtmlWriter() { return std::make_unique<HtmlReportWriter>(); }

}  // namespace pagewaste
