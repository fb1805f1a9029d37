// The report model: what the replay of one trace found, before any
// rendering. Renderers (render_text.cpp, render_json.cpp) only read it.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "support/digit_grouping.h"
#include "format/format.h"
#include "frames.h"
#include "reader/trace_reader.h"
#include "timeline.h"
#include "what_if.h"

namespace pagewaste {

using SyscallTotals = std::array<uint64_t, format::kSyscallKinds>;

inline uint64_t SumSyscalls(const SyscallTotals& s) {
  uint64_t total = 0;
  for (uint64_t v : s) total += v;
  return total;
}

// Figures of one kind of cost, kept the same way for the whole process and
// for each call site so that the sites sum to the total.
struct CostTotals {
  uint64_t allocations = 0;   // malloc family, successful
  uint64_t frees = 0;
  uint64_t mappings = 0;      // anonymous mmap by the program, successful
  uint64_t unmappings = 0;
  uint64_t file_mappings = 0; // file-backed mmap (not allocations)
  uint64_t remappings = 0;
  uint64_t brk_calls = 0;
  uint64_t memory_calls = 0;  // madvise, mprotect
  // Anonymous PROT_NONE mappings: address space reserved, not memory. Not
  // in mappings, requested or page bytes; the parts later made accessible
  // with mprotect are, charged to the mprotect's site (made_accessible_bytes).
  uint64_t reservations = 0;
  uint64_t reserved_bytes = 0;
  uint64_t made_accessible_bytes = 0;
  uint64_t failed_calls = 0;
  uint64_t requested_bytes = 0;
  uint64_t usable_bytes = 0;       // malloc_usable_size, malloc family
  uint64_t own_usable_bytes = 0;   // that of the blocks with their own mapping
  uint64_t own_mappings = 0;       // allocations served by their own mapping
  uint64_t own_requested_bytes = 0;  // what those allocations requested
  uint64_t page_bytes = 0;         // bytes of whole pages of own mappings
  uint64_t page_waste_bytes = 0;   // page_bytes - requested, own mappings
  SyscallTotals syscalls{};
  uint64_t syscall_ns = 0;       // time spent in them, where measured
  // Measured when mappings of this site were unmapped (usage_estimate.h):
  uint64_t usage_measured = 0;         // mappings measured
  uint64_t resident_pages = 0;         // pages they ever made resident
  uint64_t used_bytes = 0;             // estimate: extent up to the last non-zero byte
  uint64_t estimated_waste_bytes = 0;  // their page bytes minus used_bytes
  uint64_t estimated_calls = 0;  // calls whose syscalls are estimates
  // Under sampling: the requested bytes that are estimates (scaled up from
  // sampled allocations); the rest were each recorded.
  uint64_t sampled_bytes = 0;

  // Adds another's figures (several processes into one total).
  void Add(const CostTotals& other);

  // The derived figures, defined here once for every renderer.
  // The waste the reports rank and show: page-rounding waste, or, where the
  // request was rounded up before the system call (a page allocator), the
  // waste measured in what the mappings were used for, when that is larger.
  uint64_t waste_bytes() const { return std::max(page_waste_bytes, estimated_waste_bytes); }
  bool waste_estimated() const { return estimated_waste_bytes > page_waste_bytes; }
  // System calls per call made at the site (all of them when it made none).
  double syscalls_per_call() const {
    return static_cast<double>(SumSyscalls(syscalls)) /
           static_cast<double>(calls() ? calls() : 1);
  }
  double page_waste_percent() const {
    return page_bytes ? 100.0 * static_cast<double>(page_waste_bytes) /
                            static_cast<double>(page_bytes)
                      : 0.0;
  }

  // Requested bytes of the malloc family's blocks from shared heap pages:
  // what is neither an own mapping nor a reservation made accessible.
  uint64_t heap_allocations() const { return allocations - (own_mappings - mappings); }
  uint64_t heap_requested_bytes() const {
    uint64_t other = own_requested_bytes + made_accessible_bytes;
    return requested_bytes > other ? requested_bytes - other : 0;
  }

  // Calls made at the site, of any kind: what syscalls are set against.
  uint64_t calls() const {
    return allocations + frees + mappings + reservations + unmappings + file_mappings +
           remappings + brk_calls + memory_calls + failed_calls;
  }
};

// Under sampling (pagewaste run --sample), one standard error of an
// estimated byte count: sqrt(interval x bytes), the spread of a Poisson
// count of interval-sized picks. 0 when not sampled.
uint64_t SamplingErrorBytes(uint64_t interval, uint64_t bytes);

// The one line that says why a site enters the kernel, e.g. "each
// allocation maps its own pages: 1,000 mmap for 1,000 allocations".
std::string SyscallPattern(const CostTotals& c);

// Lifetime buckets of freed blocks: < 10 ms, < 100 ms, < 1 s, < 10 s, 10 s
// or more. The shim's clock ticks every few milliseconds (the trace header's
// time_resolution_ns), so finer buckets would be noise.
inline constexpr int kLifetimeBuckets = 5;
inline constexpr const char* kLifetimeLabels[kLifetimeBuckets] = {
    "<10ms", "<100ms", "<1s", "<10s", ">=10s"};
// Lifetimes in decades: < 10 ms, ..., < 10 s, then 10 s or more.
inline int LifetimeBucket(uint64_t ns) {
  int bucket = 0;
  for (uint64_t limit = 10'000'000; bucket < kLifetimeBuckets - 1 && ns >= limit; limit *= 10)
    ++bucket;
  return bucket;
}

struct CallSite {
  uint64_t stack_id = 0;
  CostTotals cost;
  uint64_t leaked_allocations = 0;
  uint64_t leaked_bytes = 0;
  // Blocks from this site that were freed before any other allocation.
  uint64_t temporary_allocations = 0;
  std::array<uint64_t, kLifetimeBuckets> lifetimes{};  // freed blocks, by lifetime
  std::string advice;  // what to do about it, where the pattern is clear
  Stack frames;  // innermost first
  std::string key;  // SiteKey(frames): the same site in another run has the same
  // What reports call it, unique among the sites of one report: its first
  // frame in the program's own code, and the callers where two sites part
  // (SiteLabels, program_code.h).
  std::string label;
  // Under sampling, one standard error of its estimated bytes (0 otherwise).
  uint64_t sampling_error_bytes = 0;
  // In the combined view: the processes whose sites merged into this one.
  uint64_t processes = 1;
};

// How flame graphs and profiles name a frame: the function, or
// "?? (module+0x1a2b)" where it is unknown.
std::string FrameName(const Frame& frame);

// A call site's name across runs and machines: 16 hex digits hashing its
// symbolized frames (function, file name without its directory, line,
// inlined; module name and offset where the function is unknown), never
// addresses, which move with ASLR, but for a frame with neither function
// nor module (code no module maps, a JIT's), which has nothing else to be
// told apart by. Empty for no frames.
std::string SiteKey(const Stack& frames);
// The same without lines, offsets or inlined marks: what matches a site
// across two builds of a program (pagewaste diff), where every edit moves
// lines.
std::string SiteMatchKey(const Stack& frames);

inline constexpr size_t kThreadsListed = 64;

struct ThreadTotals {
  uint32_t tid = 0;
  CostTotals cost;
};

struct HistogramBucket {
  uint64_t min_size = 0;  // inclusive
  uint64_t max_size = 0;  // inclusive
  uint64_t count = 0;
  uint64_t own_mappings = 0;
  uint64_t page_waste_bytes = 0;
};
// Sizes by powers of two: bucket b holds (2^(b-1), 2^b], the last one the rest.
inline constexpr int kHistogramBuckets = 48;
inline int BucketOf(uint64_t size) {
  return size <= 1 ? 0 : std::min(kHistogramBuckets - 1, 64 - __builtin_clzll(size - 1));
}

struct ProcessInfo {
  std::string trace_path;
  TraceHeader header;
  TraceStatus status = TraceStatus::kComplete;
  std::string status_message;
  // What an incomplete trace lost (ReadResult); chunks and bytes are the
  // End record's.
  uint64_t events_lost = 0;
  bool symbols_missing = false;
  uint64_t stacks_cut = 0;  // stacks the producer cut at its depth limit
  uint64_t chunks_lost() const { return end ? end->chunks_lost : 0; }
  uint64_t bytes_lost() const { return end ? end->bytes_lost : 0; }
  std::optional<EndEvent> end;
  uint64_t duration_ns = 0;  // from the start of tracing to the last event
  uint64_t events = 0;
  uint64_t trace_bytes = 0;
};

// The moment the program held the most bytes in pages of its own mappings,
// and who held them then.
// The highest bytes in pages of own mappings within one millisecond of the
// run (from the start of tracing), and what was held when it ended: what
// the combined view adds up across processes.
struct PageStep {
  uint64_t time_ns = 0;  // start of the millisecond
  uint64_t highest = 0;
  uint64_t last = 0;
};
inline constexpr uint64_t kPageStepNs = 1000000;

struct PeakInfo {
  uint64_t time_ns = 0;      // since the start of tracing
  uint64_t page_bytes = 0;
  std::vector<CallSite> sites;  // by bytes held; cost.page_bytes = held at the peak
  uint64_t live_mappings = 0;   // the most own mappings live at once (any time)
  uint64_t max_map_count = 0;   // this machine's vm.max_map_count (0: unknown)
};

// What the program asked for against what it held, at the moment it held
// the most: malloc's requested bytes, the allocator's slack on top
// (usable - requested), the page rounding of malloc's own mappings, and the
// program's direct mappings in whole pages; and beside them, what the
// allocator's brk heap held beyond its live blocks (kept after frees, or not
// handed out yet), where the trace knows the heap's size.
struct MemoryReconciliation {
  uint64_t time_ns = 0;
  uint64_t requested_bytes = 0;
  uint64_t allocator_slack_bytes = 0;
  uint64_t page_rounding_bytes = 0;
  uint64_t direct_mapping_bytes = 0;
  uint64_t total_bytes = 0;  // the four above
  bool kept_known = false;
  uint64_t kept_after_free_bytes = 0;
};

struct Report {
  ProcessInfo process;
  CostTotals summary;
  uint64_t peak_live_bytes = 0;    // requested bytes live at once, max
  uint64_t peak_mapped_bytes = 0;  // page bytes of own mappings live, max
  uint64_t peak_reserved_bytes = 0;    // PROT_NONE address space held at once, max
  uint64_t reserved_at_exit_bytes = 0; // and still held at the end
  PeakInfo peak;
  MemoryReconciliation memory_went;
  uint64_t leaked_allocations = 0;
  uint64_t leaked_bytes = 0;       // requested bytes live at the end
  // An attached trace (format::kHeaderAttached): the frees and unmappings
  // of memory allocated before the attach, which no site's frees or
  // unmappings count (their system calls are counted).
  struct BeforeAttach {
    uint64_t frees = 0;
    uint64_t unmappings = 0;
    uint64_t unmapped_bytes = 0;
  } before_attach;
  uint64_t threads = 0;
  // Memory system calls made outside everything the trace holds (the
  // loader, thread stacks, C library internals): what a ptrace observer
  // counted beyond the events and the shim's own. Only with an observer.
  std::optional<SyscallTotals> outside_syscalls;
  // And those it saw before the shim started (the dynamic loader's).
  std::optional<SyscallTotals> before_start_syscalls;
  // The kThreadsListed threads with the most calls, by tid; the rest, and
  // the threads past those a replay follows one by one, summed.
  std::vector<ThreadTotals> thread_totals;
  struct OtherThreads {
    uint64_t threads = 0;
    CostTotals cost;
  } other_threads;
  std::vector<CallSite> call_sites;  // ordered by page waste, then syscalls
  // The sites that enter the kernel most often, by system calls made.
  std::vector<CallSite> kernel_sites;
  // The sites with the most still allocated or mapped at exit.
  std::vector<CallSite> leak_sites;
  std::vector<HistogramBucket> histogram;
  std::vector<TimelineSample> timeline;
  uint64_t timeline_interval_ns = 0;
  std::vector<PageStep> page_steps;  // only the milliseconds in which bytes in pages changed
  std::vector<PageSizeResult> what_if_page_sizes;
  std::vector<AllocatorResult> what_if_allocators;
  // Modules whose file on disk is not the traced one (symbolizer.h).
  std::vector<std::string> symbol_warnings;
  // The traced modules' build ids (hex), by path; empty where not recorded.
  std::map<std::string, std::string> module_build_ids;

  // The share of the traced run spent in the system calls, 0 to 1.
  double syscall_time_share() const {
    return process.duration_ns ? static_cast<double>(summary.syscall_ns) /
                                     static_cast<double>(process.duration_ns)
                               : 0.0;
  }
};

// What the traces of a report lost, added up: every output says it, and
// `check` fails on it unless the budget allows.
struct Losses {
  size_t incomplete_traces = 0;  // not complete: incomplete, truncated or corrupt
  uint64_t chunks = 0;
  uint64_t events = 0;
  uint64_t bytes = 0;
  void Add(const ProcessInfo& p);
};

// Adds site's figures to into's (the frames kept are the larger part's).
void MergeSite(CallSite* into, const CallSite& site);
// Merges the sites that share a key, keeping the first one's place.
void MergeSameKey(std::vector<CallSite>* sites);

// The call sites a report lists, and the rest summed: sites, not frames,
// are what makes a large program's report large (cc1plus: 120,000 sites).
struct SitesShown {
  std::vector<CallSite> sites;  // in ByWaste order
  size_t other_sites = 0;       // how many were folded into other
  CostTotals other;
  uint64_t other_leaked_allocations = 0;
  uint64_t other_leaked_bytes = 0;
};
// The first n (0: all) by waste, and besides them any site among the first n
// by system calls, by allocations or by bytes live at exit; all is in
// ByWaste order.
SitesShown ShownSites(const std::vector<CallSite>& all, size_t n);

// The `limit` sites (0: all) with the largest key(site), ties by stack id:
// ordered by pointer, so that only the sites kept are copied.
template <typename Key>
std::vector<CallSite> TopSites(const std::vector<CallSite>& sites, size_t limit, Key key) {
  std::vector<const CallSite*> order;
  order.reserve(sites.size());
  for (const CallSite& s : sites) order.push_back(&s);
  auto first = [&](const CallSite* a, const CallSite* b) {
    if (key(*a) != key(*b)) return key(*a) > key(*b);
    return a->stack_id < b->stack_id;
  };
  if (limit && limit < order.size()) {
    std::partial_sort(order.begin(), order.begin() + static_cast<ptrdiff_t>(limit), order.end(),
                      first);
    order.resize(limit);
  } else {
    std::sort(order.begin(), order.end(), first);
  }
  std::vector<CallSite> out;
  out.reserve(order.size());
  for (const CallSite* s : order) out.push_back(*s);
  return out;
}

// The orders every list of sites follows, the same in every run of a
// deterministic program: by the figure the list is about, ties by key.
bool ByWaste(const CallSite& a, const CallSite& b);
bool BySyscalls(const CallSite& a, const CallSite& b);
bool ByLeaked(const CallSite& a, const CallSite& b);

// s with every byte that does not begin a well-formed UTF-8 sequence
// replaced by U+FFFD: a trace's strings (paths, arguments, names) are bytes,
// and pprof's protobuf strings, XML and Markdown want UTF-8.
std::string ValidUtf8(const std::string& s);
// (1, "request", "requests") -> "1 request"; (1000, ...) -> "1,000 requests".
std::string Counted(uint64_t n, const char* singular, const char* plural);

std::string SyscallName(int kind);
const char* EndReasonName(format::EndReason reason);
// "preload" or "ptrace": which backend recorded the trace.
const char* BackendName(format::Backend backend);

// With a ptrace observer's counts in the End record (run
// --observe-syscalls): the memory system calls made outside what the trace
// holds (report->outside_syscalls) and before the shim started
// (before_start_syscalls). Nothing without them.
void AddObserverCounts(Report* report);

}  // namespace pagewaste
