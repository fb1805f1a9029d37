// The text report: each process's summary, its call sites and their frames, and
// the combined view.
#include <fmt/format.h>

#include <algorithm>
#include <ctime>

#include "model/program_code.h"
#include "render.h"

namespace pagewaste {
namespace {

std::string Num(uint64_t v) { return GroupDigits(v); }

// What a span of the report is, where a terminal shows it apart: the
// renderer says what each span is; RenderOptions::colour says whether it
// becomes colour (a person at a terminal) or stays plain text (a pipe, a
// file), so that the words and figures are the same either way.
enum class Span {
  kHeading,  // a section's first line: bold
  kWaste,    // page-rounding waste, the report's point: red
  kWarning,  // a trace that is not whole, symbols that could not be read: yellow
};

std::string Styled(const RenderOptions& options, Span span, const std::string& text) {
  if (!options.colour) return text;
  const char* start = span == Span::kHeading ? "\x1b[1m"    // bold
                      : span == Span::kWaste ? "\x1b[31m"    // red
                                             : "\x1b[33m";  // yellow
  return start + text + "\x1b[0m";
}

// A heading's line.
void Heading(const RenderOptions& options, const std::string& text, std::string* out) {
  *out += Styled(options, Span::kHeading, text) + "\n";
}

// "  WARNING   " and the rest of the line.
void Warning(const RenderOptions& options, const std::string& text, std::string* out) {
  *out += "  " + Styled(options, Span::kWarning, "WARNING") + "   " + text + "\n";
}

std::string Bytes(uint64_t v) {
  if (v < 10 * 1024) return Num(v) + " B";
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double x = static_cast<double>(v);
  int u = -1;
  while (x >= 1024 && u < 3) {
    x /= 1024;
    ++u;
  }
  return fmt::format("{} B ({:.1f} {})", Num(v), x, units[u]);
}

// ": 348,106 events and 5,623,808 B lost", or nothing when none were.
std::string LostText(uint64_t events, uint64_t bytes) {
  if (!events && !bytes) return "";
  return fmt::format(": {} and {} lost", Counted(events, "event", "events"), Bytes(bytes));
}

std::string Syscalls(const SyscallTotals& s) {
  uint64_t total = SumSyscalls(s);
  if (!total) return "0";
  std::string out = Num(total) + ":";
  const char* sep = " ";
  for (int i = 0; i < format::kSyscallKinds; ++i) {
    if (!s[i]) continue;
    out += fmt::format("{}{} {}", sep, SyscallName(i), Num(s[i]));
    sep = ", ";
  }
  return out;
}

// "1.01 per call, 1.234 ms in the kernel (estimated)".
std::string SyscallDetail(const CostTotals& c) {
  uint64_t total = SumSyscalls(c.syscalls);
  if (!total) return "";
  std::string out = fmt::format(" ({:.3g} per call", c.syscalls_per_call());
  if (c.syscall_ns) out += fmt::format(", {:.3f} ms in the kernel", static_cast<double>(c.syscall_ns) / 1e6);
  if (c.estimated_calls) out += fmt::format(", estimated for {} calls", Num(c.estimated_calls));
  return out + ")";
}

// CLOCK_REALTIME ns as the local time, to the second: "2026-12-06 18:29:02".
std::string WallClock(uint64_t realtime_ns) {
  time_t seconds = static_cast<time_t>(realtime_ns / 1000000000);
  struct tm local;
  char text[32] = "";
  if (localtime_r(&seconds, &local)) strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &local);
  return text;
}

std::string Percent(uint64_t part, uint64_t whole) {
  if (!whole) return "0%";
  return fmt::format("{:.2f}%", 100.0 * static_cast<double>(part) / static_cast<double>(whole));
}

std::string Location(const Frame& f) {
  return (f.inlined ? "[inlined] " : "") + FrameText(f);
}

// Bytes in pages also count reservations the program made accessible,
// which are no request of their own: said where there are any.
std::string MadeAccessible(const CostTotals& c) {
  if (!c.made_accessible_bytes) return "";
  return fmt::format(" and {} of reservations made accessible", Bytes(c.made_accessible_bytes));
}

// Lines that say what a site did, in the terms of the problem: requests
// that got whole pages of their own, and requests served from shared heap
// pages.
std::vector<std::string> SiteLines(const CostTotals& c) {
  std::vector<std::string> lines;
  if (c.own_mappings) {
    uint64_t chunks = c.own_mappings - c.mappings;
    lines.push_back(fmt::format(
        "{} got pages of their own ({} direct mmap, {} malloc'd mapped {}): {} requested on "
        "average, {} in pages",
        Counted(c.own_mappings, "request", "requests"), Num(c.mappings), Num(chunks),
        chunks == 1 ? "chunk" : "chunks", Bytes(c.own_requested_bytes / c.own_mappings),
        Bytes(c.page_bytes - c.made_accessible_bytes)));
  }
  if (uint64_t heap = c.heap_allocations())
    lines.push_back(fmt::format("{} from shared heap pages: {} requested on average, {} usable",
                                Counted(heap, "allocation", "allocations"),
                                Bytes(c.heap_requested_bytes() / heap),
                                Bytes(c.usable_bytes - std::min(c.usable_bytes, c.own_usable_bytes))));
  if (c.usage_measured)
    lines.push_back(fmt::format(
        "measured at unmap or exit (estimate): {} made {} resident and used {}; "
        "estimated waste {}",
        Counted(c.usage_measured, "mapping", "mappings"), Counted(c.resident_pages, "page", "pages"),
        Bytes(c.used_bytes), Bytes(c.estimated_waste_bytes)));
  std::vector<std::string> parts;
  if (c.frees) parts.push_back(Counted(c.frees, "free", "frees"));
  if (c.unmappings) parts.push_back(Num(c.unmappings) + " munmap");
  if (c.remappings) parts.push_back(Num(c.remappings) + " mremap");
  if (c.file_mappings) parts.push_back(Counted(c.file_mappings, "file mapping", "file mappings"));
  if (c.brk_calls) parts.push_back(Num(c.brk_calls) + " brk/sbrk");
  if (c.memory_calls) parts.push_back(Num(c.memory_calls) + " madvise/mprotect");
  if (c.reservations)
    parts.push_back(Counted(c.reservations, "PROT_NONE reservation", "PROT_NONE reservations") +
                    " of " + Bytes(c.reserved_bytes));
  if (c.made_accessible_bytes)
    parts.push_back(Bytes(c.made_accessible_bytes) + " of reservations made accessible");
  if (c.failed_calls) parts.push_back(Counted(c.failed_calls, "failed call", "failed calls"));
  std::string other;
  for (size_t i = 0; i < parts.size(); ++i) other += (i ? ", " : "") + parts[i];
  if (!other.empty()) lines.push_back(other);
  return lines;
}

// A site's stack, innermost first, with the library frames folded around
// the program's own: a run of more than two library frames before the
// site's location shows its first and last (where the kernel was entered,
// and what the program called), one after it a count. At most `limit`
// lines; from_location starts at the location's caller (the short lists,
// whose "at" line names the location).
void Frames(const CallSite& site, size_t limit, bool from_location, std::string* out) {
  const Stack& frames = site.frames;
  if (frames.empty()) return;  // the "at" line says so
  size_t location = LocationIndex(frames);
  std::vector<bool> own = OwnFrames(frames);
  struct Line {
    std::string text;
    size_t frames;  // how many frames it stands for
  };
  std::vector<Line> lines;
  for (size_t i = from_location ? location + 1 : 0; i < frames.size();) {
    if (own[i] || i == location) {
      lines.push_back({Location(frames[i]), 1});
      ++i;
      continue;
    }
    size_t end = i;
    while (end < frames.size() && !own[end] && end != location) ++end;
    size_t run = end - i;
    if (run <= 2) {
      for (; i < end; ++i) lines.push_back({Location(frames[i]), 1});
    } else if (i < location) {
      lines.push_back({Location(frames[i]), 1});
      lines.push_back({fmt::format("... {} library frames", Num(run - 2)), run - 2});
      lines.push_back({Location(frames[end - 1]), 1});
    } else {
      lines.push_back({fmt::format("... {} library frames", Num(run)), run});
    }
    i = end;
  }
  size_t shown = 0, covered = from_location ? location + 1 : 0;
  for (; shown < lines.size() && shown < limit; ++shown) {
    *out += fmt::format("       {}\n", lines[shown].text);
    covered += lines[shown].frames;
  }
  if (shown < lines.size())
    *out += fmt::format("       ... {} more\n", Counted(frames.size() - covered, "frame", "frames"));
}

// The two lists of sites every report leads with: by page waste, and by
// the system calls they make.
void CallSiteSections(const std::vector<CallSite>& sites, const std::vector<CallSite>& kernel,
                      const RenderOptions& options, bool combined, std::string* out) {
  Heading(options, "Top call sites by page-rounding waste", out);
  size_t rank = 0;
  for (const CallSite& site : sites) {
    if (options.top && rank == options.top) break;
    const CostTotals& c = site.cost;
    // Where the request was rounded up before the system call, the waste
    // shows in what the mappings were used for: lead with that estimate.
    std::string waste = Bytes(c.waste_bytes()) + (c.waste_estimated() ? " estimated" : "");
    uint64_t error = site.sampling_error_bytes;
    *out += fmt::format("#{:<3} {}, {} in pages, {}{} requested; syscalls {}{}\n", ++rank,
                        Styled(options, Span::kWaste, waste + " waste"), Bytes(c.page_bytes),
                        Bytes(c.requested_bytes), error ? " +/- " + Bytes(error) : "",
                        Syscalls(c.syscalls), SyscallDetail(c));
    *out += fmt::format("     at {}\n", site.label);
    if (combined && site.processes > 1)
      *out += fmt::format("     in {} processes\n", Num(site.processes));
    for (const std::string& line : SiteLines(c)) *out += fmt::format("     {}\n", line);
    if (!site.advice.empty()) *out += fmt::format("     => {}\n", site.advice);
    if (site.leaked_allocations)
      *out += fmt::format("     live at exit: {} in {}\n", Bytes(site.leaked_bytes),
                          Counted(site.leaked_allocations, "block or mapping", "blocks and mappings"));
    uint64_t freed = 0;
    for (uint64_t n : site.lifetimes) freed += n;
    if (freed) {
      std::string spread;
      for (int b = 0; b < kLifetimeBuckets; ++b)
        if (site.lifetimes[b]) spread += fmt::format(" {} {}", kLifetimeLabels[b], Num(site.lifetimes[b]));
      *out += fmt::format("     lifetimes:{}; {} temporary (freed before any other allocation)\n",
                          spread, Num(site.temporary_allocations));
    }
    Frames(site, options.frames, false, out);
  }
  if (!rank) *out += "  (none)\n";

  *out += "\n";
  Heading(options, "Call sites that enter the kernel most often", out);
  rank = 0;
  for (const CallSite& site : kernel) {
    if (options.top && rank == options.top) break;
    const CostTotals& c = site.cost;
    *out += fmt::format("#{:<3} {} for {}{}\n", ++rank,
                        Counted(SumSyscalls(c.syscalls), "syscall", "syscalls"),
                        Counted(c.calls(), "call", "calls"), SyscallDetail(c));
    *out += fmt::format("     at {}\n", site.label);
    *out += fmt::format("     {}\n", SyscallPattern(c));
    Frames(site, 3, true, out);
  }
  if (!rank) *out += "  (none)\n";
}

// Which process, how it was recorded, and how whole its trace is.
void ProcessHeading(const Report& r, const RenderOptions& options, std::string* out) {
  const ProcessInfo& p = r.process;
  std::string argv;
  for (const auto& a : p.header.argv) argv += (argv.empty() ? "" : " ") + a;
  Heading(options, "pagewaste report: " + p.trace_path, out);
  *out += fmt::format("  process   pid {} (parent {}), {}\n", p.header.process.pid,
                      p.header.process.ppid, p.header.exe);
  *out += fmt::format("  command   {}\n", argv);
  *out += fmt::format("  recorded  by the {} backend\n", BackendName(p.header.process.backend));
  if (p.header.flags & format::kHeaderAttached) {
    *out += fmt::format("  attached  to the running process at {}: what it did before is not here\n",
                        WallClock(p.header.process.start_realtime_ns));
    const Report::BeforeAttach& b = r.before_attach;
    if (b.frees || b.unmappings)
      *out += fmt::format("            it freed {} and unmapped {} ({}) of memory allocated before;\n"
                          "            in no figure below but the syscalls, and no leak is counted\n"
                          "            that was not seen allocated\n",
                          Counted(b.frees, "block", "blocks"),
                          Counted(b.unmappings, "mapping", "mappings"), Bytes(b.unmapped_bytes));
  }
  if (uint64_t interval = p.header.process.sample_interval_bytes)
    *out += fmt::format(
        "  sampled   the malloc family, one pick per {} requested on average (Poisson); its\n"
        "            counts and bytes are estimates, +/- sqrt({} x bytes) at one standard\n"
        "            error; calls that entered the kernel were all recorded, as they are\n",
        Bytes(interval), Num(interval));
  std::string ending = "no end record";
  if (p.end) {
    ending = EndReasonName(p.end->reason);
    if (p.end->status != format::kUnknownStatus)
      ending += fmt::format(" {}", p.end->status);
  }
  *out += fmt::format("  trace     {}, {}, {}, {}, {:.3f} s, {}\n",
                      TraceStatusName(p.status), ending, Counted(p.events, "event", "events"),
                      Counted(r.threads, "thread", "threads"),
                      static_cast<double>(p.duration_ns) / 1e9, Bytes(p.trace_bytes));
  if (p.status != TraceStatus::kComplete)
    Warning(options,
            fmt::format("the trace is {}: {}; figures cover what it holds",
                        TraceStatusName(p.status), p.status_message),
            out);
  for (const std::string& warning : r.symbol_warnings) Warning(options, warning, out);
  if (p.stacks_cut)
    *out += fmt::format("  note      {} cut at the depth the backend follows: their outermost\n"
                        "            frames are missing, their events are whole\n",
                        Counted(p.stacks_cut, "stack", "stacks"));
  *out += fmt::format("  page size {}\n\n", Bytes(p.header.process.page_size));
}

// The process's totals: calls, bytes, waste, system calls, peaks, leaks.
void ProcessSummary(const Report& r, const RenderOptions& options, std::string* out) {
  const ProcessInfo& p = r.process;
  const CostTotals& s = r.summary;
  Heading(options, "Summary", out);
  *out += fmt::format("  allocations          {:>14}   frees       {}\n", Num(s.allocations), Num(s.frees));
  *out += fmt::format("  direct mappings      {:>14}   unmappings  {}   file mappings {}\n",
                      Num(s.mappings), Num(s.unmappings), Num(s.file_mappings));
  *out += fmt::format("  requested bytes      {}\n", Bytes(s.requested_bytes));
  *out += fmt::format("  bytes in pages       {}  in {}{}\n", Bytes(s.page_bytes),
                      Counted(s.own_mappings, "own mapping", "own mappings"),
                      MadeAccessible(s));
  *out += fmt::format("  page-rounding waste  {}  {:.2f}% of bytes in pages\n",
                      Styled(options, Span::kWaste, Bytes(s.page_waste_bytes)),
                      s.page_waste_percent());
  if (s.usage_measured)
    *out += fmt::format("  used (measured)      {} in {} of {}, at unmap or exit (estimate);\n"
                        "                       estimated waste {}\n",
                        Bytes(s.used_bytes), Counted(s.resident_pages, "resident page", "resident pages"),
                        Counted(s.usage_measured, "mapping", "mappings"),
                        Bytes(s.estimated_waste_bytes));
  *out += fmt::format("  syscalls             {}{}\n", Syscalls(s.syscalls), SyscallDetail(s));
  if (p.header.process.backend == format::Backend::kPtrace ||
      p.header.process.backend == format::Backend::kBpf)
    *out += fmt::format("  outside allocations  none: the {} backend records every memory system call\n"
                        "                       of the process, the loader's and the runtime's included\n",
                        BackendName(p.header.process.backend));
  else if (r.outside_syscalls)
    *out += fmt::format("  outside allocations  {} after the shim started (thread stacks, C library\n"
                        "                       internals; counted by the ptrace observer)\n",
                        Syscalls(*r.outside_syscalls));
  else
    *out += "  outside allocations  not observed: run with --observe-syscalls to count them\n";
  if (r.before_start_syscalls)
    *out += fmt::format("  before pagewaste     {} (the dynamic loader's, before the shim started;\n"
                        "                       in no figure above)\n",
                        Syscalls(*r.before_start_syscalls));
  if (p.end && p.end->shim_syscalls.Total())
    *out += fmt::format("  pagewaste's own      {} memory syscalls, in no figure above\n",
                        Num(p.end->shim_syscalls.Total()));
  // Under ptrace the run is slowed by the tracer's stops, which the
  // calls' own time leaves out: no share of it would be true.
  if (s.syscall_ns && p.duration_ns && p.header.process.backend != format::Backend::kPtrace)
    *out += fmt::format("  time in syscalls     {:.2f}% of the traced run\n",
                        100.0 * r.syscall_time_share());
  *out += fmt::format("  peak live bytes      {}\n", Bytes(r.peak_live_bytes));
  *out += fmt::format("  peak mapped bytes    {}\n", Bytes(r.peak_mapped_bytes));
  if (s.reservations)
    *out += fmt::format("  reserved (PROT_NONE) {} in {} reservations, at most {} at once, {} at exit;\n"
                        "                       address space, not memory: in no figure above until\n"
                        "                       made accessible ({} so far)\n",
                        Bytes(s.reserved_bytes), Num(s.reservations), Bytes(r.peak_reserved_bytes),
                        Bytes(r.reserved_at_exit_bytes), Bytes(s.made_accessible_bytes));
  *out += fmt::format("  live at exit         {} in {}\n\n", Bytes(r.leaked_bytes),
                      Counted(r.leaked_allocations, "block or mapping", "blocks and mappings"));
}

// Bytes in pages over the run, as a line of bars.
void Timeline(const Report& r, const RenderOptions& options, std::string* out) {
  if (!r.timeline.empty()) {
    // One character per sample: the highest bytes in pages in its interval.
    static const char* kBars[] = {" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
    uint64_t top = 0;
    for (const TimelineSample& t : r.timeline) top = std::max(top, t.page_bytes);
    if (top) {
      std::string bars;
      for (const TimelineSample& t : r.timeline)
        bars += kBars[(t.page_bytes * 8 + top - 1) / top];
      *out += "\n";
      Heading(options,
              fmt::format("Bytes in pages over time (each mark {:.3f} s, top {})",
                          static_cast<double>(r.timeline_interval_ns) / 1e9, Bytes(top)),
              out);
      *out += fmt::format("  |{}|\n", bars);
    }
  }
}

// What the process left allocated or mapped, by call site.
void LeakSites(const Report& r, const RenderOptions& options, std::string* out) {
  *out += "\n";
  Heading(options, "Still allocated or mapped at exit, by call site", out);
  int rank = 0;
  for (const CallSite& site : r.leak_sites) {
    if (options.top && static_cast<size_t>(rank) == options.top) break;
    *out += fmt::format("#{:<3} {} in {}\n", ++rank, Bytes(site.leaked_bytes),
                        Counted(site.leaked_allocations, "block or mapping", "blocks and mappings"));
    *out += fmt::format("     at {}\n", site.label);
    Frames(site, 3, true, out);
  }
  if (!rank) *out += "  (nothing)\n";
}

// What the program held at its peak, from requests to whole pages.
void MemoryWent(const Report& r, const RenderOptions& options, std::string* out) {
  if (r.memory_went.total_bytes) {
    const MemoryReconciliation& m = r.memory_went;
    *out += "\n";
    Heading(options,
            fmt::format("Where the memory went, at the moment the program held the most ({:.3f} s)",
                        static_cast<double>(m.time_ns) / 1e9),
            out);
    *out += fmt::format("    {:>28}  requested from malloc and co\n", Bytes(m.requested_bytes));
    *out += fmt::format("  + {:>28}  allocator slack (usable beyond requested)\n", Bytes(m.allocator_slack_bytes));
    *out += fmt::format("  + {:>28}  page rounding of malloc's own mappings\n", Bytes(m.page_rounding_bytes));
    *out += fmt::format("  + {:>28}  direct mappings and reservations made accessible, in whole pages\n",
                        Bytes(m.direct_mapping_bytes));
    *out += fmt::format("  = {:>28}  held by the program\n", Bytes(m.total_bytes));
    if (m.kept_known)
      *out += fmt::format("  + {:>28}  kept by the allocator's brk heap beyond its live blocks\n"
                          "  = {:>28}  in the heap and mappings\n",
                          Bytes(m.kept_after_free_bytes), Bytes(m.total_bytes + m.kept_after_free_bytes));
    else
      *out += "    (what the allocator kept after frees is not known for this trace)\n";
  }
}

// The call sites that held the most pages at the peak.
void PeakHolders(const Report& r, const RenderOptions& options, std::string* out) {
  if (r.peak.page_bytes) {
    *out += "\n";
    Heading(options,
            fmt::format("Peak: {} in pages of own mappings at {:.3f} s, held by",
                        Bytes(r.peak.page_bytes), static_cast<double>(r.peak.time_ns) / 1e9),
            out);
    size_t shown = 0;
    for (const CallSite& site : r.peak.sites) {
      if (options.top && shown++ == options.top) break;
      *out += fmt::format("  {} ({}) at {}\n", Bytes(site.cost.page_bytes),
                          Percent(site.cost.page_bytes, r.peak.page_bytes), site.label);
      Frames(site, 3, true, out);
    }
    // Worth a word once the mappings come within reach of the limit.
    if (r.peak.max_map_count && r.peak.live_mappings * 10 >= r.peak.max_map_count)
      *out += fmt::format("  live mappings at most {} of vm.max_map_count {} ({}): a page-per-object\n"
                          "  allocator runs out of mappings long before it runs out of memory\n",
                          Num(r.peak.live_mappings), Num(r.peak.max_map_count),
                          Percent(r.peak.live_mappings, r.peak.max_map_count));
  }
}

// The same requests under other page sizes and allocators.
void WhatIf(const Report& r, const RenderOptions& options, std::string* out) {
  const ProcessInfo& p = r.process;
  const CostTotals& s = r.summary;
  if (!r.what_if_page_sizes.empty() || !r.what_if_allocators.empty()) {
    *out += "\n";
    Heading(options, "What if: the same requests under other assumptions (docs/what-if.md)", out);
    if (!r.what_if_page_sizes.empty())
      *out += fmt::format("  {:<22} {:>24} {:>24} {:>24}\n", "page size", "bytes in pages",
                          "page waste", "peak in pages");
    for (const PageSizeResult& w : r.what_if_page_sizes)
      *out += fmt::format("  {:<22} {:>24} {:>24} {:>24}\n",
                          Bytes(w.page_size) +
                              (w.page_size == p.header.process.page_size ? " (this run)" : ""),
                          Bytes(w.page_bytes), Bytes(w.page_waste_bytes), Bytes(w.peak_page_bytes));
    if (!r.what_if_allocators.empty()) {
      *out += fmt::format("  {:<22} {:>24} {:>24} {:>12}\n", "allocator", "peak in pages",
                          "waste at peak", "syscalls");
      *out += fmt::format("  {:<22} {:>24} {:>24} {:>12}\n", "what happened",
                          Bytes(r.peak_mapped_bytes), "-", Num(SumSyscalls(s.syscalls)));
    }
    for (const AllocatorResult& a : r.what_if_allocators)
      *out += fmt::format("  {:<22} {:>24} {:>24} {:>12}\n", AllocatorModelName(a.model),
                          Bytes(a.peak_page_bytes), Bytes(a.page_waste_bytes), Num(a.syscalls));
  }
}

// Requests by size, with the one-page mark.
void SizeHistogram(const Report& r, const RenderOptions& options, std::string* out) {
  const ProcessInfo& p = r.process;
  *out += "\n";
  Heading(options, "Request sizes (allocations and direct mappings)", out);
  *out += fmt::format("  {:>23}  {:>12}  {:>12}  {}\n", "size", "requests",
                      "own mapping", "page waste");
  bool marked = false;
  for (const HistogramBucket& b : r.histogram) {
    if (!marked && b.min_size > p.header.process.page_size) {
      *out += fmt::format("  ---- one page: {} ----\n", Bytes(p.header.process.page_size));
      marked = true;
    }
    *out += fmt::format("  {:>23}  {:>12}  {:>12}  {}\n",
                        fmt::format("{} - {}", Num(b.min_size), Num(b.max_size)),
                        Num(b.count), Num(b.own_mappings), Bytes(b.page_waste_bytes));
  }
}

// One process's report, section by section.
void Process(const Report& r, const RenderOptions& options, std::string* out) {
  ProcessHeading(r, options, out);
  ProcessSummary(r, options, out);
  CallSiteSections(r.call_sites, r.kernel_sites, options, false, out);
  Timeline(r, options, out);
  LeakSites(r, options, out);
  MemoryWent(r, options, out);
  PeakHolders(r, options, out);
  WhatIf(r, options, out);
  SizeHistogram(r, options, out);
}

// Several processes: their sum leads, with their call sites merged by key
// and the peak they reached together; one line per process follows, then
// each process's own report.
void Combined(const CombinedReport& t, const RenderOptions& options, std::string* out) {
  const CostTotals& c = t.summary;
  Heading(options, fmt::format("pagewaste report: {} processes, combined", t.processes), out);
  if (t.lost.incomplete_traces)
    Warning(options,
            fmt::format("{} of {} not complete{}; figures cover what they hold",
                        Counted(t.lost.incomplete_traces, "trace", "traces"), Num(t.processes),
                        LostText(t.lost.events, t.lost.bytes)),
            out);
  *out += "\n";
  Heading(options, "Summary", out);
  *out += fmt::format("  allocations          {:>14}   frees       {}\n", Num(c.allocations), Num(c.frees));
  *out += fmt::format("  direct mappings      {:>14}   unmappings  {}   file mappings {}\n",
                      Num(c.mappings), Num(c.unmappings), Num(c.file_mappings));
  *out += fmt::format("  requested bytes      {}\n", Bytes(c.requested_bytes));
  *out += fmt::format("  bytes in pages       {}  in {}{}\n", Bytes(c.page_bytes),
                      Counted(c.own_mappings, "own mapping", "own mappings"),
                      MadeAccessible(c));
  *out += fmt::format("  page-rounding waste  {}  {:.2f}% of bytes in pages\n",
                      Styled(options, Span::kWaste, Bytes(c.page_waste_bytes)),
                      c.page_waste_percent());
  if (c.usage_measured)
    *out += fmt::format("  estimated waste      {} (measured at unmap or exit)\n",
                        Bytes(c.estimated_waste_bytes));
  *out += fmt::format("  syscalls             {}{}\n", Syscalls(c.syscalls), SyscallDetail(c));
  *out += fmt::format("  peak in pages        {} at {:.3f} s, all processes together\n",
                      Bytes(t.peak.page_bytes), static_cast<double>(t.peak.time_ns) / 1e9);
  for (const CombinedPeak::Share& share : t.peak.processes) {
    const ProcessInfo& p = t.each[share.process].process;
    *out += fmt::format("                       {} by pid {} ({})\n", Bytes(share.page_bytes),
                        p.header.process.pid, p.header.exe);
  }
  *out += fmt::format("  live at exit         {} in {}\n\n", Bytes(t.leaked_bytes),
                      Counted(t.leaked_allocations, "block or mapping", "blocks and mappings"));
  CallSiteSections(t.call_sites, t.kernel_sites, options, true, out);

  *out += "\n";
  Heading(options, "Processes", out);
  *out += fmt::format("  {:>8}  {:>12}  {:>28}  {:>10}  {}\n", "pid", "allocations",
                      "page-rounding waste", "syscalls", "executable");
  for (const Report& r : t.each)
    *out += fmt::format("  {:>8}  {:>12}  {:>28}  {:>10}  {}{}\n", r.process.header.process.pid,
                        Num(r.summary.allocations), Bytes(r.summary.page_waste_bytes),
                        Num(SumSyscalls(r.summary.syscalls)), r.process.header.exe,
                        ProcessImageNote(r, t.each));
}

// Several processes: the combined view with the sites asked for, then each
// process with its first three of each list (the combined view has the
// rest; the JSON has every one).
constexpr size_t kSitesPerProcess = 3;

class TextReportWriter : public ReportWriter {
 public:
  TextReportWriter(const RenderOptions& options, size_t processes)
      : options_(options), each_(options) {
    if (processes > 1)
      each_.top = options.top ? std::min(options.top, kSitesPerProcess) : kSitesPerProcess;
  }

  void AddProcess(const Report& report) override {
    sections_ += "\n";
    Process(report, each_, &sections_);
  }

  bool Finish(const CombinedReport& combined, TextSink* sink, std::string* /*err*/) override {
    std::string out;
    if (combined.processes > 1) Combined(combined, options_, &out);
    out += out.empty() ? sections_.substr(std::min<size_t>(1, sections_.size())) : sections_;
    sink->Write(out);
    return true;
  }

 private:
  RenderOptions options_;
  RenderOptions each_;
  std::string sections_;  // each process's, each after an empty line
};

}  // namespace

std::unique_ptr<ReportWriter> TextWriter(const RenderOptions& options, size_t processes) {
  return std::make_unique<TextReportWriter>(options, processes);
}

}  // namespace pagewaste
