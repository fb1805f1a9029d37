// The lists of call sites a report leads with (site_lists.h).
#include "site_lists.h"

#include <algorithm>
#include <tuple>

#include "model/program_code.h"

namespace pagewaste {

void RankSites(const std::vector<CallSite>& all, size_t top, SiteAdvice* advice, Report* r) {
  // Waste as measured where the request itself was not visible (a page
  // allocator that rounds up before mmap) ranks the same as page waste.
  r->call_sites = TopSites(all, top, [](const CallSite& s) {
    return std::make_tuple(s.cost.waste_bytes(), SumSyscalls(s.cost.syscalls),
                           s.cost.requested_bytes, s.cost.allocations);
  });
  r->kernel_sites = TopSites(all, top ? top : 10, [](const CallSite& s) {
    return std::make_tuple(SumSyscalls(s.cost.syscalls), s.cost.calls(), uint64_t{0}, uint64_t{0});
  });
  for (CallSite& site : r->call_sites) site.advice = advice->For(site);
  r->leak_sites = TopSites(all, top ? top : 10, [](const CallSite& s) {
    return std::make_tuple(s.leaked_bytes, s.leaked_allocations, uint64_t{0}, uint64_t{0});
  });
  while (!r->leak_sites.empty() && r->leak_sites.back().leaked_allocations == 0)
    r->leak_sites.pop_back();
  while (!r->kernel_sites.empty() && SumSyscalls(r->kernel_sites.back().cost.syscalls) == 0)
    r->kernel_sites.pop_back();
}

void ListPeakSites(std::vector<std::pair<uint64_t, uint64_t>> held, size_t top, Report* r) {
  std::sort(held.begin(), held.end(), [](const auto& a, const auto& b) {
    return a.second > b.second || (a.second == b.second && a.first < b.first);
  });
  for (const auto& [site, bytes] : held) {
    if (r->peak.sites.size() == (top ? top : 10)) break;
    CallSite peak_site;
    peak_site.stack_id = site;
    peak_site.cost.page_bytes = bytes;
    r->peak.sites.push_back(peak_site);
  }
}

void NameSites(const ReplayOptions& options, SiteFrames* frames, const StackNodes& nodes,
               const std::vector<ModuleInfo>& modules, uint64_t sample_interval, Report* r) {
  auto lists = {&r->call_sites, &r->kernel_sites, &r->leak_sites, &r->peak.sites};
  if (options.symbolize) frames->Give(lists, nodes, modules, options.code, &r->symbol_warnings);
  for (auto* sites : lists) {
    for (CallSite& site : *sites) {
      site.key = SiteKey(site.frames);
      site.sampling_error_bytes = SamplingErrorBytes(sample_interval, site.cost.sampled_bytes);
    }
    // Two stacks that symbolize alike (two calls on one line) are one
    // site to whoever reads the report.
    MergeSameKey(sites);
  }
  // Ties in the ranking go by key, not by stack id: the same order in every
  // run of a deterministic program.
  std::stable_sort(r->call_sites.begin(), r->call_sites.end(), ByWaste);
  std::stable_sort(r->kernel_sites.begin(), r->kernel_sites.end(), BySyscalls);
  std::stable_sort(r->leak_sites.begin(), r->leak_sites.end(), ByLeaked);
  std::stable_sort(r->peak.sites.begin(), r->peak.sites.end(),
                   [](const CallSite& a, const CallSite& b) {
                     if (a.cost.page_bytes != b.cost.page_bytes)
                       return a.cost.page_bytes > b.cost.page_bytes;
                     return a.key < b.key;
                   });
  LabelSites({&r->call_sites, &r->kernel_sites, &r->leak_sites, &r->peak.sites});
}

}  // namespace pagewaste
