// The figures pagewaste reports by name (metrics.h).
#include "metrics.h"

namespace pagewaste {

const std::vector<Metric>& Metrics() {
  using U = MetricUnit;
  static const std::vector<Metric> metrics = [] {
    auto cost = [](uint64_t CostTotals::*field) {
      return [field](const CallSite& s) { return s.cost.*field; };
    };
    std::vector<Metric> m = {
        {"allocations", "allocations", U::kCount, cost(&CostTotals::allocations), true,
         "allocations"},
        {"mappings", "direct mappings", U::kCount, cost(&CostTotals::mappings), true, ""},
        {"requested_bytes", "requested bytes", U::kBytes, cost(&CostTotals::requested_bytes),
         true, "requested"},
        {"page_bytes", "bytes in pages", U::kBytes, cost(&CostTotals::page_bytes), true,
         "in_pages"},
        {"page_waste_bytes", "page-rounding waste", U::kBytes,
         cost(&CostTotals::page_waste_bytes), true, "page_waste"},
        {"estimated_waste_bytes", "estimated waste", U::kBytes,
         cost(&CostTotals::estimated_waste_bytes), true, ""},
        {"waste_bytes", "waste (page-rounding, or estimated when larger)", U::kBytes,
         [](const CallSite& s) { return s.cost.waste_bytes(); }, true, ""},
        {"syscalls", "system calls", U::kCount,
         [](const CallSite& s) { return SumSyscalls(s.cost.syscalls); }, true, "syscalls"},
        {"syscall_ns", "time in system calls", U::kNanoseconds, cost(&CostTotals::syscall_ns),
         false, "syscall_time"},
        {"leaked_bytes", "bytes live at exit", U::kBytes,
         [](const CallSite& s) { return s.leaked_bytes; }, true, "leaked"},
        {"leaked_allocations", "blocks and mappings live at exit", U::kCount,
         [](const CallSite& s) { return s.leaked_allocations; }, true, ""},
        {"peak_page_bytes", "peak bytes in pages", U::kBytes, nullptr, true, ""},
        {"peak_live_mappings", "peak live mappings", U::kCount, nullptr, true, ""},
    };
    for (int i = 0; i < format::kSyscallKinds; ++i)
      m.push_back({"syscalls." + SyscallName(i), SyscallName(i) + " calls", U::kCount,
                   [i](const CallSite& s) { return s.cost.syscalls[i]; }, true, ""});
    return m;
  }();
  return metrics;
}

const Metric* FindMetric(const std::string& name) {
  for (const Metric& m : Metrics())
    if (name == m.name) return &m;
  return nullptr;
}

bool FigureOf(const CallSite& site, const std::string& metric, uint64_t* value) {
  const Metric* m = FindMetric(metric);
  if (!m || !m->of_site) return false;
  *value = m->of_site(site);
  return true;
}

std::string MetricNames(const std::function<bool(const Metric&)>& keep) {
  std::string out;
  for (const Metric& m : Metrics())
    if (keep(m)) out += (out.empty() ? "" : ", ") + m.name;
  return out;
}

}  // namespace pagewaste
