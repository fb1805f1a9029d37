// JSON output, described by docs/report.schema.json. The names under
// process, summary and call_sites are fixed: CI scripts depend on them.
#include <nlohmann/json.hpp>

#include "render.h"

namespace pagewaste {
namespace {

using nlohmann::json;

constexpr int kSchemaVersion = 1;

json Syscalls(const SyscallTotals& s) {
  json j = json::object();
  for (int i = 0; i < format::kSyscallKinds; ++i) j[SyscallName(i)] = s[i];
  j["total"] = SumSyscalls(s);
  return j;
}

// The fields a call site and the summary share.
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
  (*j)["page_bytes"] = c.page_bytes;
  (*j)["page_waste_bytes"] = c.page_waste_bytes;
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
  (*j)["waste_bytes"] = c.waste_bytes();
  (*j)["waste_estimated"] = c.waste_estimated();
}

json Frame(const pagewaste::Frame& f) {
  return {{"function", f.function}, {"file", f.file},       {"line", f.line},
          {"module", f.module},     {"address", f.address}, {"module_offset", f.module_offset},
          {"inlined", f.inlined}};
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

json Frames(const CallSite& site) {
  json frames = json::array();
  for (const auto& f : site.frames) frames.push_back(Frame(f));
  return frames;
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
          {"threads", r.threads}};
}

json ReportJson(const Report& r) {
  const ProcessInfo& p = r.process;
  json j;
  j["schema_version"] = kSchemaVersion;
  j["process"] = ProcessJson(r);
  j["trace"] = {{"path", p.trace_path},
                {"status", TraceStatusName(p.status)},
                {"message", p.status_message},
                {"truncated", p.status == TraceStatus::kTruncated},
                {"events", p.events},
                {"bytes", p.trace_bytes},
                {"duration_ns", p.duration_ns},
                {"chunks_lost", p.end ? p.end->chunks_lost : 0},
                {"embedded_symbols", (p.header.flags & format::kHeaderHasSymbols) != 0},
                {"symbol_warnings", r.symbol_warnings},
                {"shim_syscalls", ShimSyscalls(p)},
                {"observed_syscalls", ObservedSyscalls(p)},
                {"format_version", p.header.version},
                {"time_resolution_ns", p.header.process.time_resolution_ns},
                {"sample_interval_bytes", p.header.process.sample_interval_bytes}};
  json summary;
  Cost(r.summary, &summary);
  summary["page_waste_percent"] = r.summary.page_waste_percent();
  summary["syscall_time_share"] =
      p.duration_ns ? static_cast<double>(r.summary.syscall_ns) / static_cast<double>(p.duration_ns)
                    : 0.0;
  summary["outside_syscalls"] = r.outside_syscalls ? Syscalls(*r.outside_syscalls) : json(nullptr);
  summary["before_start_syscalls"] =
      r.before_start_syscalls ? Syscalls(*r.before_start_syscalls) : json(nullptr);
  summary["peak_live_bytes"] = r.peak_live_bytes;
  summary["peak_mapped_bytes"] = r.peak_mapped_bytes;
  summary["peak_reserved_bytes"] = r.peak_reserved_bytes;
  summary["reserved_at_exit_bytes"] = r.reserved_at_exit_bytes;
  summary["leaked_bytes"] = r.leaked_bytes;
  summary["leaked_allocations"] = r.leaked_allocations;
  j["summary"] = summary;
  json sites = json::array();
  for (const CallSite& site : r.call_sites) {
    json s;
    s["stack_id"] = site.stack_id;
    s["key"] = site.key;
    Cost(site.cost, &s);
    s["leaked_allocations"] = site.leaked_allocations;
    s["leaked_bytes"] = site.leaked_bytes;
    s["temporary_allocations"] = site.temporary_allocations;
    s["sampling_error_bytes"] = site.sampling_error_bytes;
    s["advice"] = site.advice;
    json lifetimes = json::object();
    for (int b = 0; b < kLifetimeBuckets; ++b) lifetimes[kLifetimeLabels[b]] = site.lifetimes[b];
    s["lifetimes"] = lifetimes;
    s["frames"] = Frames(site);
    sites.push_back(s);
  }
  j["call_sites"] = sites;
  json peak_sites = json::array();
  for (const CallSite& site : r.peak.sites) {
    peak_sites.push_back({{"stack_id", site.stack_id},
                          {"key", site.key},
                          {"page_bytes", site.cost.page_bytes},
                          {"frames", Frames(site)}});
  }
  const MemoryReconciliation& m = r.memory_went;
  j["where_memory_went"] = {{"time_ns", m.time_ns},
                            {"requested_bytes", m.requested_bytes},
                            {"allocator_slack_bytes", m.allocator_slack_bytes},
                            {"page_rounding_bytes", m.page_rounding_bytes},
                            {"direct_mapping_bytes", m.direct_mapping_bytes},
                            {"kept_after_free_bytes",
                             m.kept_known ? json(m.kept_after_free_bytes) : json(nullptr)},
                            {"total_bytes", m.total_bytes}};
  j["peak"] = {{"time_ns", r.peak.time_ns},
               {"page_bytes", r.peak.page_bytes},
               {"live_mappings", r.peak.live_mappings},
               {"max_map_count", r.peak.max_map_count},
               {"sites", peak_sites}};
  json threads = json::array();
  for (const ThreadTotals& t : r.thread_totals) {
    json thread = {{"tid", t.tid}};
    Cost(t.cost, &thread);
    threads.push_back(thread);
  }
  j["threads"] = threads;
  json kernel = json::array();
  for (const CallSite& site : r.kernel_sites) {
    kernel.push_back({{"stack_id", site.stack_id},
                      {"key", site.key},
                      {"syscalls", Syscalls(site.cost.syscalls)},
                      {"syscall_ns", site.cost.syscall_ns},
                      {"calls", site.cost.calls()},
                      {"syscall_pattern", SyscallPattern(site.cost)},
                      {"frames", Frames(site)}});
  }
  j["kernel_sites"] = kernel;
  json leaks = json::array();
  for (const CallSite& site : r.leak_sites) {
    leaks.push_back({{"stack_id", site.stack_id},
                     {"key", site.key},
                     {"leaked_allocations", site.leaked_allocations},
                     {"leaked_bytes", site.leaked_bytes},
                     {"frames", Frames(site)}});
  }
  j["leak_sites"] = leaks;
  json histogram = json::array();
  for (const HistogramBucket& b : r.histogram)
    histogram.push_back({{"min_size", b.min_size},
                         {"max_size", b.max_size},
                         {"count", b.count},
                         {"own_mappings", b.own_mappings},
                         {"page_waste_bytes", b.page_waste_bytes}});
  j["size_histogram"] = histogram;
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
  j["what_if"] = {{"page_sizes", page_sizes}, {"allocators", allocators}};
  json timeline = json::array();
  for (const TimelineSample& t : r.timeline)
    timeline.push_back({{"time_ns", t.start_ns},
                        {"live_bytes", t.live_bytes},
                        {"page_bytes", t.page_bytes},
                        {"page_waste_bytes", t.page_waste_bytes},
                        {"resident_pages", nullptr}});
  j["timeline"] = {{"interval_ns", r.timeline_interval_ns}, {"samples", timeline}};
  return j;
}

// Strings from a trace (paths, arguments, symbol names) need not be UTF-8:
// such bytes come out as U+FFFD.
std::string Dump(const json& j) {
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace

std::string RenderJson(const std::vector<Report>& reports) {
  if (reports.size() == 1) return Dump(ReportJson(reports[0]));
  json j;
  j["schema_version"] = kSchemaVersion;
  json all = json::array();
  for (const Report& r : reports) all.push_back(ReportJson(r));
  j["reports"] = all;
  CombinedTotals total = Combine(reports);
  json combined = {{"processes", total.processes},
                   {"leaked_allocations", total.leaked_allocations},
                   {"leaked_bytes", total.leaked_bytes}};
  Cost(total.cost, &combined);
  j["combined"] = combined;
  return Dump(j);
}

}  // namespace pagewaste
