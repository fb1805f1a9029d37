// JSON output, schema_version 6 (kSchemaVersion), described by docs/report.schema.json.
//
// One shape whatever the number of traces: `processes` (one report per
// trace) and `combined` (their sum, call sites merged by key). Frames are
// written once, in `frames`; stacks once, in `stacks`, as a tree of
// [frame, parent] nodes from the outermost frame in; a site names its
// innermost node. The size grows with unique frames plus sites, not with
// sites times stack depth.
//
// Sites come in a fixed order (report_model.h), and the figures that
// depend on timing or on the run's identity are in fields of their own
// (names ending in _ns or _share, `timeline`, `lifetimes`, `pid`, `ppid`, `tid`, `path`,
// `file_bytes`): without them, two runs of a deterministic program give the
// same JSON.
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <map>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "render.h"
#include "report_document.h"

namespace pagewaste {
namespace {

using json = nlohmann::ordered_json;


json Syscalls(const SyscallTotals& s) {
  json j = json::object();
  for (int i = 0; i < format::kSyscallKinds; ++i) j[SyscallName(i)] = s[i];
  j["total"] = SumSyscalls(s);
  return j;
}

// The fields a call site and a summary share.
void Cost(const CostTotals& c, json* j) {
  (*j)["allocations"] = c.allocations;
  (*j)["frees"] = c.frees;
  (*j)["mappings"] = c.mappings;
  (*j)["unmappings"] = c.unmappings;
  (*j)["file_mappings"] = c.file_mappings;
  (*j)["remappings"] = c.remappings;
  (*j)["brk_calls"] = c.brk_calls;
  (*j)["memory_calls"] = c.memory_calls;
  (*j)["reservations"] = c.reservations;
  (*j)["reserved_bytes"] = c.reserved_bytes;
  (*j)["made_accessible_bytes"] = c.made_accessible_bytes;
  (*j)["failed_calls"] = c.failed_calls;
  (*j)["requested_bytes"] = c.requested_bytes;
  (*j)["usable_bytes"] = c.usable_bytes;
  (*j)["own_mappings"] = c.own_mappings;
  (*j)["own_requested_bytes"] = c.own_requested_bytes;
  (*j)["page_bytes"] = c.page_bytes;
  (*j)["page_waste_bytes"] = c.page_waste_bytes;
  (*j)["waste_bytes"] = c.waste_bytes();
  (*j)["waste_estimated"] = c.waste_estimated();
  (*j)["syscalls"] = Syscalls(c.syscalls);
  (*j)["syscall_ns"] = c.syscall_ns;
  (*j)["syscalls_estimated"] = c.estimated_calls > 0;
  (*j)["estimated_calls"] = c.estimated_calls;
  (*j)["calls"] = c.calls();
  (*j)["syscalls_per_call"] = c.syscalls_per_call();
  (*j)["syscall_pattern"] = SyscallPattern(c);
  (*j)["usage_measured_mappings"] = c.usage_measured;
  (*j)["resident_pages"] = c.resident_pages;
  (*j)["used_bytes"] = c.used_bytes;
  (*j)["used_bytes_estimated"] = c.usage_measured > 0;
  (*j)["estimated_waste_bytes"] = c.estimated_waste_bytes;
}

// Strings from a trace (paths, arguments, symbol names) need not be UTF-8:
// such bytes come out as U+FFFD.
std::string Compact(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// A section's call sites, each written out as a line as it is made: a
// combined view of thousands of sites is never a tree of objects at once.
// The section holds null in their place.
using SiteLines = std::vector<std::string>;

// The frame and stack tables, filled as sites are written, each frame kept
// as its line of output.
class StackTables {
 public:
  // The innermost node of the site's stack; null for a site without frames.
  json Stack(const pagewaste::Stack& frames) {
    int64_t parent = -1;
    for (auto f = frames.rbegin(); f != frames.rend(); ++f) {
      auto [it, fresh] = nodes_.emplace(std::make_pair(FrameIndex(*f), parent), stacks_.size());
      if (fresh) stacks_.emplace_back(it->first.first, parent);
      parent = static_cast<int64_t>(it->second);
    }
    return parent < 0 ? json(nullptr) : json(parent);
  }
  const std::vector<std::string>& frames() const { return frames_; }
  const std::vector<std::pair<int64_t, int64_t>>& stacks() const { return stacks_; }

 private:
  using FrameKey =
      std::tuple<std::string, std::string, int, std::string, uint64_t, bool, bool, uint64_t>;

  int64_t FrameIndex(const Frame& f) {
    // A pooled frame is looked up once; frames that differ only in what the
    // table leaves out share an entry.
    auto known = by_frame_.find(&f);
    if (known != by_frame_.end()) return known->second;
    // A frame of code no module maps has only its address to tell it from
    // another: it is written with it. Others are named by module and offset
    // (addresses differ from run to run).
    uint64_t address = f.function.empty() && f.module.empty() ? f.address : 0;
    FrameKey key{f.function,      f.file,    f.line,    f.module,
                 f.module_offset, f.inlined, f.library, address};
    auto [it, fresh] = frame_index_.emplace(std::move(key), frames_.size());
    if (fresh) {
      json frame = {{"function", f.function}, {"file", f.file},
                    {"line", f.line},         {"module", f.module},
                    {"module_offset", f.module_offset}, {"inlined", f.inlined},
                    {"library", f.library}};
      if (address) frame["address"] = address;
      frames_.push_back(Compact(frame));
    }
    by_frame_.emplace(&f, static_cast<int64_t>(it->second));
    return static_cast<int64_t>(it->second);
  }

  std::unordered_map<const Frame*, int64_t> by_frame_;
  std::map<FrameKey, size_t> frame_index_;
  std::map<std::pair<int64_t, int64_t>, size_t> nodes_;
  std::vector<std::string> frames_;
  std::vector<std::pair<int64_t, int64_t>> stacks_;
};

json CallSiteJson(const CallSite& site, bool combined, StackTables* tables);

constexpr size_t kNoSites = SIZE_MAX;  // a `top` that lists none: every site in other_sites

// The sites listed (as lines), and the rest summed in other_sites, so that
// the sites and other_sites still add up to the summary.
void CallSites(const std::vector<CallSite>& all, size_t top, bool combined, StackTables* tables,
               json* j, SiteLines* lines) {
  SitesShown shown;
  if (top == kNoSites) {
    shown.other_sites = all.size();
    for (const CallSite& site : all) {
      shown.other.Add(site.cost);
      shown.other_leaked_allocations += site.leaked_allocations;
      shown.other_leaked_bytes += site.leaked_bytes;
    }
  } else {
    shown = ShownSites(all, top);
  }
  lines->clear();
  lines->reserve(shown.sites.size());
  for (const CallSite& site : shown.sites)
    lines->push_back(Compact(CallSiteJson(site, combined, tables)));
  (*j)["call_sites"] = nullptr;
  json other = {{"sites", shown.other_sites}};
  Cost(shown.other, &other);
  other["leaked_allocations"] = shown.other_leaked_allocations;
  other["leaked_bytes"] = shown.other_leaked_bytes;
  (*j)["other_sites"] = other;
}

json CallSiteJson(const CallSite& site, bool combined, StackTables* tables) {
  json s;
  s["key"] = site.key;
  s["label"] = site.label;
  s["stack"] = tables->Stack(site.frames);
  if (combined) s["processes"] = site.processes;
  Cost(site.cost, &s);
  s["leaked_allocations"] = site.leaked_allocations;
  s["leaked_bytes"] = site.leaked_bytes;
  s["temporary_allocations"] = site.temporary_allocations;
  s["sampling_error_bytes"] = site.sampling_error_bytes;
  s["advice"] = site.advice;
  json lifetimes = json::object();
  for (int b = 0; b < kLifetimeBuckets; ++b) lifetimes[kLifetimeLabels[b]] = site.lifetimes[b];
  s["lifetimes"] = lifetimes;
  return s;
}

json KernelSites(const std::vector<CallSite>& sites, StackTables* tables) {
  json out = json::array();
  for (const CallSite& site : sites)
    out.push_back({{"key", site.key},
                   {"label", site.label},
                   {"stack", tables->Stack(site.frames)},
                   {"calls", site.cost.calls()},
                   {"syscalls", Syscalls(site.cost.syscalls)},
                   {"syscalls_per_call", site.cost.syscalls_per_call()},
                   {"syscall_pattern", SyscallPattern(site.cost)},
                   {"syscall_ns", site.cost.syscall_ns}});
  return out;
}

json LeakSites(const std::vector<CallSite>& sites, StackTables* tables) {
  json out = json::array();
  for (const CallSite& site : sites)
    out.push_back({{"key", site.key},
                   {"label", site.label},
                   {"stack", tables->Stack(site.frames)},
                   {"leaked_allocations", site.leaked_allocations},
                   {"leaked_bytes", site.leaked_bytes}});
  return out;
}

// The shim's own memory system calls, from the End record (zeros without
// one): in strace's view of the process, in none of the figures.
json ShimSyscalls(const ProcessInfo& p) {
  SyscallTotals totals{};
  if (p.end)
    for (int i = 0; i < format::kSyscallKinds; ++i) totals[i] = p.end->shim_syscalls.count[i];
  return Syscalls(totals);
}

// All memory system calls over the trace's span, from an observer; null
// without one.
json ObservedSyscalls(const ProcessInfo& p) {
  if (!p.end || !p.end->observed_syscalls.Total()) return nullptr;
  SyscallTotals totals{};
  for (int i = 0; i < format::kSyscallKinds; ++i) totals[i] = p.end->observed_syscalls.count[i];
  return Syscalls(totals);
}

json ProcessJson(const Report& r) {
  const ProcessInfo& p = r.process;
  json exit = nullptr;
  if (p.end) {
    exit = {{"reason", EndReasonName(p.end->reason)}};
    exit["status"] = p.end->status == format::kUnknownStatus ? json(nullptr) : json(p.end->status);
  }
  return {{"pid", p.header.process.pid},
          {"ppid", p.header.process.ppid},
          {"exe", p.header.exe},
          {"argv", p.header.argv},
          {"page_size", p.header.process.page_size},
          {"backend", BackendName(p.header.process.backend)},
          {"exit", exit},
          {"threads", r.threads},
          {"attached", (p.header.flags & format::kHeaderAttached) != 0},
          {"before_attach",
           {{"frees", r.before_attach.frees},
            {"unmappings", r.before_attach.unmappings},
            {"unmapped_bytes", r.before_attach.unmapped_bytes}}}};
}

// The trace: where, how whole, what it holds.
json TraceJson(const Report& r) {
  const ProcessInfo& p = r.process;
  return {{"path", p.trace_path},
          {"status", TraceStatusName(p.status)},
          {"message", p.status_message},
          {"truncated", p.status == TraceStatus::kTruncated},
          {"events", p.events},
          {"file_bytes", p.trace_bytes},
          {"duration_ns", p.duration_ns},
          {"chunks_lost", p.chunks_lost()},
          {"events_lost", p.events_lost},
          {"bytes_lost", p.bytes_lost()},
          {"symbols_missing", p.symbols_missing},
          {"stacks_cut", p.stacks_cut},
          {"embedded_symbols", (p.header.flags & format::kHeaderHasSymbols) != 0},
          {"symbol_warnings", r.symbol_warnings},
          {"shim_syscalls", ShimSyscalls(p)},
          {"observed_syscalls", ObservedSyscalls(p)},
          {"format_version", p.header.version},
          {"time_resolution_ns", p.header.process.time_resolution_ns},
          {"sample_interval_bytes", p.header.process.sample_interval_bytes}};
}

// The process's totals, with its peaks and what it left at exit.
json SummaryJson(const Report& r) {
  json summary;
  Cost(r.summary, &summary);
  summary["page_waste_percent"] = r.summary.page_waste_percent();
  summary["outside_syscalls"] = r.outside_syscalls ? Syscalls(*r.outside_syscalls) : json(nullptr);
  summary["before_start_syscalls"] =
      r.before_start_syscalls ? Syscalls(*r.before_start_syscalls) : json(nullptr);
  summary["peak_live_bytes"] = r.peak_live_bytes;
  summary["peak_page_bytes"] = r.peak_mapped_bytes;
  summary["peak_live_mappings"] = r.peak.live_mappings;
  summary["peak_reserved_bytes"] = r.peak_reserved_bytes;
  summary["reserved_at_exit_bytes"] = r.reserved_at_exit_bytes;
  summary["leaked_bytes"] = r.leaked_bytes;
  summary["leaked_allocations"] = r.leaked_allocations;
  summary["syscall_time_share"] = r.syscall_time_share();
  return summary;
}

// The peak in pages, with the sites that held it.
json PeakJson(const Report& r, StackTables* tables) {
  json peak_sites = json::array();
  for (const CallSite& site : r.peak.sites)
    peak_sites.push_back({{"key", site.key},
                          {"label", site.label},
                          {"stack", tables->Stack(site.frames)},
                          {"page_bytes", site.cost.page_bytes}});
  return {{"page_bytes", r.peak.page_bytes},
          {"live_mappings", r.peak.live_mappings},
          {"max_map_count", r.peak.max_map_count},
          {"sites", peak_sites},
          {"time_ns", r.peak.time_ns}};
}

json WhereMemoryWentJson(const MemoryReconciliation& m) {
  return {{"requested_bytes", m.requested_bytes},
          {"allocator_slack_bytes", m.allocator_slack_bytes},
          {"page_rounding_bytes", m.page_rounding_bytes},
          {"direct_mapping_bytes", m.direct_mapping_bytes},
          {"kept_after_free_bytes", m.kept_known ? json(m.kept_after_free_bytes) : json(nullptr)},
          {"total_bytes", m.total_bytes},
          {"time_ns", m.time_ns}};
}

// The threads with the most calls, and the rest summed.
void ThreadsJson(const Report& r, json* j) {
  json threads = json::array();
  for (const ThreadTotals& t : r.thread_totals) {
    json thread = {{"tid", t.tid}};
    Cost(t.cost, &thread);
    threads.push_back(thread);
  }
  (*j)["threads"] = threads;
  json other_threads = {{"threads", r.other_threads.threads}};
  Cost(r.other_threads.cost, &other_threads);
  (*j)["other_threads"] = other_threads;
}

json HistogramJson(const Report& r) {
  json histogram = json::array();
  for (const HistogramBucket& b : r.histogram)
    histogram.push_back({{"min_size", b.min_size},
                         {"max_size", b.max_size},
                         {"count", b.count},
                         {"own_mappings", b.own_mappings},
                         {"page_waste_bytes", b.page_waste_bytes}});
  return histogram;
}

json WhatIfJson(const Report& r) {
  json page_sizes = json::array();
  for (const PageSizeResult& w : r.what_if_page_sizes)
    page_sizes.push_back({{"page_size", w.page_size},
                          {"page_bytes", w.page_bytes},
                          {"page_waste_bytes", w.page_waste_bytes},
                          {"peak_page_bytes", w.peak_page_bytes}});
  json allocators = json::array();
  for (const AllocatorResult& a : r.what_if_allocators)
    allocators.push_back({{"model", AllocatorModelName(a.model)},
                          {"peak_page_bytes", a.peak_page_bytes},
                          {"page_waste_bytes", a.page_waste_bytes},
                          {"syscalls", a.syscalls}});
  return {{"page_sizes", page_sizes}, {"allocators", allocators}};
}

json TimelineJson(const Report& r) {
  json timeline = json::array();
  for (const TimelineSample& t : r.timeline)
    timeline.push_back({{"time_ns", t.start_ns},
                        {"live_bytes", t.live_bytes},
                        {"page_bytes", t.page_bytes},
                        {"page_waste_bytes", t.page_waste_bytes}});
  return {{"interval_ns", r.timeline_interval_ns}, {"samples", timeline}};
}

json ReportJson(const Report& r, size_t top, StackTables* tables, SiteLines* lines) {
  json j;
  j["process"] = ProcessJson(r);
  j["trace"] = TraceJson(r);
  j["summary"] = SummaryJson(r);
  CallSites(r.call_sites, top, false, tables, &j, lines);
  j["kernel_sites"] = KernelSites(top == kNoSites ? std::vector<CallSite>() : r.kernel_sites, tables);
  j["leak_sites"] = LeakSites(top == kNoSites ? std::vector<CallSite>() : r.leak_sites, tables);
  j["peak"] = PeakJson(r, tables);
  j["where_memory_went"] = WhereMemoryWentJson(r.memory_went);
  ThreadsJson(r, &j);
  j["size_histogram"] = HistogramJson(r);
  j["what_if"] = WhatIfJson(r);
  j["timeline"] = TimelineJson(r);
  return j;
}

json CombinedJson(const CombinedReport& c, size_t top, StackTables* tables, SiteLines* lines) {
  json j;
  j["processes"] = c.processes;
  j["lost"] = {{"incomplete_traces", c.lost.incomplete_traces},
               {"chunks", c.lost.chunks},
               {"events", c.lost.events},
               {"bytes", c.lost.bytes}};
  json summary;
  Cost(c.summary, &summary);
  summary["page_waste_percent"] = c.summary.page_waste_percent();
  summary["peak_live_bytes"] = c.peak_live_bytes;
  summary["peak_page_bytes"] = c.peak.page_bytes;
  summary["peak_live_mappings"] = c.peak.live_mappings;
  summary["leaked_bytes"] = c.leaked_bytes;
  summary["leaked_allocations"] = c.leaked_allocations;
  j["summary"] = summary;
  json holders = json::array();
  for (const CombinedPeak::Share& s : c.peak.processes)
    holders.push_back({{"process", s.process}, {"page_bytes", s.page_bytes}});
  j["peak"] = {{"page_bytes", c.peak.page_bytes},
               {"live_mappings", c.peak.live_mappings},
               {"processes", holders},
               {"time_ns", c.peak.time_ns}};
  CallSites(c.call_sites, top, true, tables, &j, lines);
  j["kernel_sites"] = KernelSites(c.kernel_sites, tables);
  j["leak_sites"] = LeakSites(c.leak_sites, tables);
  return j;
}

// Objects are indented, one field per line; an array of objects or arrays
// has one element per line, each written compactly: a site, a frame or a
// stack node per line, which keeps the file small and a diff readable.
void Write(const json& j, int indent, std::string* out);

// One line per element, as Write lays out an array of structured elements.
template <typename Lines>
void WriteLines(const Lines& lines, int indent, std::string* out) {
  if (lines.empty()) {
    *out += "[]";
    return;
  }
  *out += "[\n";
  for (size_t i = 0; i < lines.size(); ++i) {
    out->append(indent + 2, ' ');
    *out += lines[i];
    *out += i + 1 < lines.size() ? ",\n" : "\n";
  }
  out->append(indent, ' ');
  *out += "]";
}

// j with its "call_sites" from lines (none: j's own).
void Write(const json& j, int indent, std::string* out, const SiteLines* lines) {
  if (!j.is_object() || j.empty()) return Write(j, indent, out);
  *out += "{\n";
  bool first = true;
  for (const auto& [key, value] : j.items()) {
    if (!first) *out += ",\n";
    first = false;
    out->append(indent + 2, ' ');
    *out += Compact(key) + ": ";
    if (lines && key == "call_sites")
      WriteLines(*lines, indent + 2, out);
    else
      Write(value, indent + 2, out);
  }
  *out += "\n";
  out->append(indent, ' ');
  *out += "}";
}

void Write(const json& j, int indent, std::string* out) {
  if (j.is_object() && !j.empty()) {
    Write(j, indent, out, nullptr);
  } else if (j.is_array() && !j.empty() && j.front().is_structured()) {
    *out += "[\n";
    for (size_t i = 0; i < j.size(); ++i) {
      out->append(indent + 2, ' ');
      *out += Compact(j[i]);
      *out += i + 1 < j.size() ? ",\n" : "\n";
    }
    out->append(indent, ' ');
    *out += "]";
  } else {
    *out += Compact(j);
  }
}

// Each process is written out as its replay ends and kept as text; the
// combined view, the processes and the tables of the frames and stacks
// that both name follow at the end.
class JsonReportWriter : public ReportWriter {
 public:
  explicit JsonReportWriter(const RenderOptions& options) : options_(options) {}

  void AddProcess(const Report& report) override {
    std::string text = processes_.empty() ? "    " : ",\n    ";
    SiteLines lines;
    json section =
        ReportJson(report, options_.process_sites ? options_.top : kNoSites, &tables_, &lines);
    Write(section, 4, &text, &lines);
    processes_.Write(text);
  }

  bool Finish(const CombinedReport& combined, TextSink* sink, std::string* err) override {
    std::string out = fmt::format("{{\n  \"schema_version\": {},\n  \"combined\": ", kSchemaVersion);
    SiteLines lines;
    json section = CombinedJson(combined, options_.top, &tables_, &lines);
    Write(section, 2, &out, &lines);
    out += ",\n  \"processes\": [\n";
    sink->Write(out);
    if (!processes_.CopyTo(sink)) {
      *err = processes_.error();
      return false;
    }
    out = processes_.empty() ? "  ]" : "\n  ]";
    out += ",\n  \"frames\": ";
    WriteLines(tables_.frames(), 2, &out);
    out += ",\n  \"stacks\": ";
    const auto& nodes = tables_.stacks();
    out += nodes.empty() ? "[]" : "[\n";
    for (size_t i = 0; i < nodes.size(); ++i) {
      fmt::format_to(std::back_inserter(out), "    [{},{}]{}", nodes[i].first, nodes[i].second,
                     i + 1 < nodes.size() ? ",\n" : "\n  ]");
      if (out.size() >= (1 << 20)) sink->Write(std::exchange(out, {}));
    }
    sink->Write(out + "\n}\n");
    return true;
  }

 private:
  RenderOptions options_;
  StackTables tables_;
  Spool processes_;  // each process written out, indented, one after another
};

}  // namespace

std::unique_ptr<ReportWriter> JsonWriter(const RenderOptions& options) {
  return std::make_unique<JsonReportWriter>(options);
}

}  // namespace pagewaste
