// The combined picture of several processes (combined_report.h).
#include "combined_report.h"

#include <algorithm>
#include <optional>
#include <tuple>
#include <utility>

#include <fmt/format.h>

#include "program_code.h"

namespace pagewaste {
namespace {

// Bytes in pages a process held at absolute time t (its steps' clock plus
// its start), 0 outside its run.
uint64_t HeldAt(const Report& r, uint64_t t) {
  uint64_t start = r.process.header.process.start_monotonic_ns;
  const std::vector<PageStep>& steps = r.page_steps;
  if (steps.empty() || t < start + steps.front().time_ns) return 0;
  uint64_t end = start + std::max(r.process.duration_ns, steps.back().time_ns);
  if (t > end) return 0;
  auto it = std::upper_bound(steps.begin(), steps.end(), t - start,
                             [](uint64_t v, const PageStep& s) { return v < s.time_ns; });
  --it;  // the last step at or before t
  return it->time_ns == t - start ? it->highest : it->last;
}

// When a process was alive, on one clock for all: the producer's lifetime
// on the fine clock where the trace has it (version 6); otherwise from its
// start to its last event or page step, a tick and a millisecond on.
struct Lifetime {
  uint64_t from = 0;
  uint64_t to = 0;
};

Lifetime LifetimeOf(const Report& r) {
  const std::optional<EndEvent>& end = r.process.end;
  if (end && end->started_ns && end->ended_ns >= end->started_ns)
    return {end->started_ns, end->ended_ns};
  const auto& process = r.process.header.process;
  uint64_t last = r.page_steps.empty() ? 0 : r.page_steps.back().time_ns;
  return {process.start_monotonic_ns, process.start_monotonic_ns +
                                          std::max(r.process.duration_ns, last) + kPageStepNs +
                                          process.time_resolution_ns};
}

// Of the processes that held pages in one millisecond, the most that
// those alive at one moment held together, and who they were: page steps
// cannot order two processes within a tick of the coarse clock, their
// lifetimes can.
uint64_t MostAtOnce(const std::vector<CombinedPeak::Share>& held,
                    const std::vector<Lifetime>& lifetimes,
                    std::vector<CombinedPeak::Share>* holders) {
  if (held.size() <= 1) {
    if (holders) *holders = held;
    return held.empty() ? 0 : held[0].page_bytes;
  }
  // Starts before ends at one time: lifetimes are closed.
  std::vector<std::tuple<uint64_t, int, uint64_t>> edges;
  for (const CombinedPeak::Share& s : held) {
    edges.emplace_back(lifetimes[s.process].from, 0, s.page_bytes);
    edges.emplace_back(lifetimes[s.process].to, 1, s.page_bytes);
  }
  std::sort(edges.begin(), edges.end());
  uint64_t total = 0, best = 0, best_at = 0;
  for (const auto& [time, is_end, bytes] : edges) {
    if (is_end) {
      total -= bytes;
    } else if ((total += bytes) > best) {
      best = total;
      best_at = time;
    }
  }
  if (holders) {
    holders->clear();
    for (const CombinedPeak::Share& s : held)
      if (lifetimes[s.process].from <= best_at && best_at <= lifetimes[s.process].to)
        holders->push_back(s);
  }
  return best;
}

CombinedPeak CombinedPeakOf(const std::vector<Report>& reports) {
  CombinedPeak peak;
  uint64_t origin = UINT64_MAX;
  std::vector<Lifetime> lifetimes;
  for (const Report& r : reports) {
    origin = std::min(origin, r.process.header.process.start_monotonic_ns);
    peak.live_mappings = std::max(peak.live_mappings, r.peak.live_mappings);
    lifetimes.push_back(LifetimeOf(r));
  }
  // Every millisecond in which some process changed its pages, in time
  // order; what each process held then, of those alive at one moment.
  std::vector<uint64_t> times;
  for (const Report& r : reports)
    for (const PageStep& s : r.page_steps)
      times.push_back(r.process.header.process.start_monotonic_ns + s.time_ns);
  std::sort(times.begin(), times.end());
  times.erase(std::unique(times.begin(), times.end()), times.end());
  uint64_t best_time = 0;
  std::vector<CombinedPeak::Share> held;
  for (uint64_t t : times) {
    held.clear();
    for (size_t i = 0; i < reports.size(); ++i)
      if (uint64_t bytes = HeldAt(reports[i], t)) held.push_back({i, bytes});
    uint64_t total = MostAtOnce(held, lifetimes, nullptr);
    if (total > peak.page_bytes) {
      peak.page_bytes = total;
      best_time = t;
    }
  }
  if (!peak.page_bytes) return peak;
  peak.time_ns = best_time - origin;
  held.clear();
  for (size_t i = 0; i < reports.size(); ++i)
    if (uint64_t bytes = HeldAt(reports[i], best_time)) held.push_back({i, bytes});
  MostAtOnce(held, lifetimes, &peak.processes);
  std::stable_sort(peak.processes.begin(), peak.processes.end(),
                   [](const auto& a, const auto& b) { return a.page_bytes > b.page_bytes; });
  return peak;
}

template <typename Order>
std::vector<CallSite> FirstOf(const std::vector<CallSite>& sites, size_t n, Order order,
                              bool (*keep)(const CallSite&)) {
  std::vector<CallSite> out;
  for (const CallSite& s : sites)
    if (keep(s)) out.push_back(s);
  std::sort(out.begin(), out.end(), order);
  if (out.size() > n) out.resize(n);
  return out;
}

// What the combined picture keeps of a process besides its figures: the
// lists that only its own section shows go.
void Slim(Report* r, bool keep_tables) {
  auto release = [](auto* v) { std::exchange(*v, {}); };
  release(&r->call_sites);
  release(&r->kernel_sites);
  release(&r->leak_sites);
  release(&r->peak.sites);
  release(&r->thread_totals);
  release(&r->histogram);
  release(&r->symbol_warnings);
  release(&r->module_build_ids);
  if (keep_tables) return;
  release(&r->timeline);
  release(&r->what_if_page_sizes);
  release(&r->what_if_allocators);
}

}  // namespace

void CombinedView::Add(Report r) {
  size_t index = c_.processes++;
  c_.lost.Add(r.process);
  c_.summary.Add(r.summary);
  c_.leaked_allocations += r.leaked_allocations;
  c_.leaked_bytes += r.leaked_bytes;
  c_.peak_live_bytes = std::max(c_.peak_live_bytes, r.peak_live_bytes);
  for (CallSite& site : r.call_sites) {
    auto [it, fresh] = by_key_.emplace(site.key, c_.call_sites.size());
    if (fresh) {
      c_.call_sites.push_back(std::move(site));
      c_.call_sites.back().processes = 1;
      last_process_.push_back(index);
      continue;
    }
    CallSite& into = c_.call_sites[it->second];
    // Sites of one process with the same key count it once.
    if (last_process_[it->second] != index) {
      ++into.processes;
      last_process_[it->second] = index;
    }
    MergeSite(&into, site);
  }
  c_.module_build_ids.insert(r.module_build_ids.begin(), r.module_build_ids.end());
  // The first process that held the most pages keeps its tables.
  bool largest = index == 0 || r.peak_mapped_bytes > c_.each[c_.largest].peak_mapped_bytes;
  if (largest && index) Slim(&c_.each[c_.largest], false);
  if (largest) c_.largest = index;
  Slim(&r, largest);
  c_.each.push_back(std::move(r));
}

CombinedReport CombinedView::Finish() {
  CombinedReport c = std::move(c_);
  c_ = {};
  by_key_.clear();
  last_process_.clear();
  std::sort(c.call_sites.begin(), c.call_sites.end(), ByWaste);
  c.kernel_sites = FirstOf(c.call_sites, 10, BySyscalls,
                           [](const CallSite& s) { return SumSyscalls(s.cost.syscalls) > 0; });
  c.leak_sites = FirstOf(c.call_sites, 10, ByLeaked,
                         [](const CallSite& s) { return s.leaked_allocations > 0; });
  c.peak = CombinedPeakOf(c.each);
  // One process's sites are labelled already, among the same sites.
  if (c.processes > 1) LabelSites({&c.call_sites, &c.kernel_sites, &c.leak_sites});
  return c;
}

CombinedReport Combine(const std::vector<Report>& reports) {
  CombinedView view;
  for (const Report& r : reports) view.Add(r);
  return view.Finish();
}

std::string ProcessImageNote(const Report& r, const std::vector<Report>& reports) {
  const auto& me = r.process.header;
  std::vector<std::string> notes;
  for (const Report& other : reports) {
    const auto& them = other.process.header;
    if (&other == &r || them.process.start_monotonic_ns > me.process.start_monotonic_ns) continue;
    if (them.process.pid == me.process.pid && other.process.end &&
        other.process.end->reason == format::EndReason::kExec)
      notes.push_back("exec'd in place of " + them.exe.substr(them.exe.rfind('/') + 1));
  }
  if (notes.empty())
    for (const Report& other : reports)
      if (&other != &r && other.process.header.process.pid == me.process.ppid) {
        notes.push_back(fmt::format("child of {}", me.process.ppid));
        break;
      }
  if (r.process.end && r.process.end->reason == format::EndReason::kExec)
    notes.push_back("until its exec");
  std::string out;
  for (const std::string& n : notes) out += (out.empty() ? " (" : "; ") + n;
  return out.empty() ? out : out + ")";
}

}  // namespace pagewaste
