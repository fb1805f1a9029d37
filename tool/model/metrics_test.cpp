// The metric registry: each name reads its own figure of a site, and
// docs/ci.md's table of the metrics a limit may name is the registry's.
#include "metrics.h"

#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <string>

namespace pagewaste {
namespace {

TEST(Metrics, EachNameReadsItsOwnFigureOfASite) {
  CallSite site;
  site.cost.allocations = 1;
  site.cost.mappings = 2;
  site.cost.requested_bytes = 3;
  site.cost.page_bytes = 4;
  site.cost.page_waste_bytes = 5;
  site.cost.estimated_waste_bytes = 6;
  site.cost.syscall_ns = 7;
  site.leaked_bytes = 8;
  site.leaked_allocations = 9;
  for (int i = 0; i < format::kSyscallKinds; ++i) site.cost.syscalls[i] = 10 + i;  // 10..16
  const std::map<std::string, uint64_t> want = {
      {"allocations", 1},        {"mappings", 2},           {"requested_bytes", 3},
      {"page_bytes", 4},         {"page_waste_bytes", 5},   {"estimated_waste_bytes", 6},
      {"waste_bytes", 6},        {"syscall_ns", 7},         {"leaked_bytes", 8},
      {"leaked_allocations", 9}, {"syscalls", 91},          {"syscalls.mmap", 10},
      {"syscalls.munmap", 11},   {"syscalls.mremap", 12},   {"syscalls.brk", 13},
      {"syscalls.madvise", 14},  {"syscalls.mprotect", 15}, {"syscalls.other", 16},
  };
  std::set<std::string> of_sites;
  for (const Metric& m : Metrics()) {
    uint64_t value = 0;
    if (!FigureOf(site, m.name, &value)) {
      EXPECT_TRUE(m.whole_run_only()) << m.name;
      continue;
    }
    of_sites.insert(m.name);
    ASSERT_TRUE(want.count(m.name)) << m.name;
    EXPECT_EQ(value, want.at(m.name)) << m.name;
  }
  EXPECT_EQ(of_sites.size(), want.size());
  uint64_t unused;
  EXPECT_FALSE(FigureOf(site, "peak_page_bytes", &unused));
  EXPECT_FALSE(FigureOf(site, "no_such_metric", &unused));
}

// The first cell of each row of the table under "### Metrics": its names
// in backquotes, ".KIND" standing for "syscalls.KIND".
std::set<std::string> DocumentedMetrics() {
  std::ifstream in(std::string(PAGEWASTE_SOURCE_DIR) + "/docs/ci.md");
  std::set<std::string> names;
  bool in_section = false;
  std::regex name("`([a-z_.]+)`");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("### ", 0) == 0) in_section = line == "### Metrics";
    if (!in_section || line.rfind("| `", 0) != 0) continue;
    std::string cell = line.substr(1, line.find('|', 1) - 1);
    for (std::sregex_iterator it(cell.begin(), cell.end(), name), end; it != end; ++it) {
      std::string n = (*it)[1];
      names.insert(n[0] == '.' ? "syscalls" + n : n);
    }
  }
  return names;
}

TEST(Metrics, DocsListEveryMetricALimitMayNameAndNoOther) {
  std::set<std::string> registered;
  for (const Metric& m : Metrics())
    if (m.for_limits) registered.insert(m.name);
  EXPECT_EQ(DocumentedMetrics(), registered);
}

}  // namespace
}  // namespace pagewaste
