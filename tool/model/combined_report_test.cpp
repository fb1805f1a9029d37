// The combined view from reports made in memory: sites merged by key with
// their processes counted, the figures summed, and the peak that adds up
// only processes alive at one moment.
#include "combined_report.h"

#include <gtest/gtest.h>

namespace pagewaste {
namespace {

constexpr uint64_t kTick = 1'000'000'000;  // one coarse clock value for every process here

// A process that held bytes in pages in the first millisecond of the tick,
// alive from started to ended on the fine clock (0, 0: not known).
Report Holding(uint64_t bytes, uint64_t started, uint64_t ended) {
  Report r;
  r.process.header.process.start_monotonic_ns = kTick;
  r.page_steps = {{0, bytes, 0}};
  r.peak_mapped_bytes = bytes;
  if (started) {
    EndEvent end;
    end.started_ns = started;
    end.ended_ns = ended;
    r.process.end = end;
  }
  return r;
}

TEST(CombinedPeak, AddsUpOnlyProcessesAliveAtOneMoment) {
  // One after the other, within one tick: the larger alone.
  CombinedReport apart = Combine({Holding(16384, kTick + 100'000, kTick + 900'000),
                                  Holding(12288, kTick + 1'000'000, kTick + 1'500'000)});
  EXPECT_EQ(apart.peak.page_bytes, 16384u);
  ASSERT_EQ(apart.peak.processes.size(), 1u);
  EXPECT_EQ(apart.peak.processes[0].process, 0u);
  // Alive together for 0.2 ms: both.
  CombinedReport together = Combine({Holding(16384, kTick + 100'000, kTick + 1'200'000),
                                     Holding(12288, kTick + 1'000'000, kTick + 1'500'000)});
  EXPECT_EQ(together.peak.page_bytes, 28672u);
  ASSERT_EQ(together.peak.processes.size(), 2u);
  EXPECT_EQ(together.peak.processes[1].page_bytes, 12288u);
  // Three: the first alive throughout, the other two one after the other:
  // the first with the larger of them.
  CombinedReport three = Combine({Holding(4096, kTick, kTick + 3'000'000),
                                  Holding(20480, kTick + 1'000'000, kTick + 1'500'000),
                                  Holding(4096, kTick + 2'000'000, kTick + 2'500'000)});
  EXPECT_EQ(three.peak.page_bytes, 24576u);
  // Without lifetimes (traces before version 6): added up, as before.
  EXPECT_EQ(Combine({Holding(16384, 0, 0), Holding(12288, 0, 0)}).peak.page_bytes, 28672u);
}

TEST(CombinedView, MergesSitesByKeyAndCountsTheirProcesses) {
  auto site = [](const char* key, uint64_t mappings) {
    CallSite s;
    s.key = key;
    s.frames = Stack({Frame{0, "page_alloc", "/src/a.c", 7}});
    s.cost.mappings = mappings;
    s.cost.page_waste_bytes = mappings * 3996;
    return s;
  };
  Report a, b;
  a.call_sites = {site("k1", 3), site("k2", 1)};
  a.summary.mappings = 4;
  b.call_sites = {site("k1", 2)};
  b.summary.mappings = 2;
  b.peak_mapped_bytes = 8192;
  CombinedView view;
  view.Add(a);
  view.Add(b);
  CombinedReport c = view.Finish();
  EXPECT_EQ(c.processes, 2u);
  EXPECT_EQ(c.summary.mappings, 6u);
  ASSERT_EQ(c.call_sites.size(), 2u);
  EXPECT_EQ(c.call_sites[0].key, "k1");  // by waste
  EXPECT_EQ(c.call_sites[0].cost.mappings, 5u);
  EXPECT_EQ(c.call_sites[0].cost.page_waste_bytes, 5u * 3996);
  EXPECT_EQ(c.call_sites[0].processes, 2u);
  EXPECT_EQ(c.call_sites[1].processes, 1u);
  // Each process is kept without its sites; the one that held the most
  // pages is named.
  ASSERT_EQ(c.each.size(), 2u);
  EXPECT_TRUE(c.each[0].call_sites.empty());
  EXPECT_EQ(c.largest, 1u);
}

}  // namespace
}  // namespace pagewaste
