// The replay from memory: traces written in the test with the producers'
// record writer, replayed, and every figure checked by hand.
#include "replay.h"

#include <gtest/gtest.h>

#include "memory_trace.h"

namespace pagewaste {
namespace {

using memory_trace::TraceBuilder;

const CallSite* SiteOf(const Report& r, uint64_t stack) {
  for (const CallSite& s : r.call_sites)
    if (s.stack_id == stack) return &s;
  return nullptr;
}

constexpr uint64_t kBase = 0x7f0000000000;

TEST(ReplayFromMemory, AThousandTwoByteMappingsAreAThousandPagesOfWhich4094000BytesWaste) {
  TraceBuilder t;
  // All mapped, then all unmapped: the peak holds all 1000 pages.
  for (uint64_t i = 0; i < 1000; ++i) t.Mmap(kBase + i * 4096, 2);
  for (uint64_t i = 0; i < 1000; ++i) t.Munmap(kBase + i * 4096, 2);
  Report r = t.Replay();
  EXPECT_EQ(r.process.status, TraceStatus::kComplete);
  const CostTotals& s = r.summary;
  EXPECT_EQ(s.mappings, 1000u);
  EXPECT_EQ(s.unmappings, 1000u);
  EXPECT_EQ(s.requested_bytes, 2000u);
  EXPECT_EQ(s.page_bytes, 4'096'000u);
  EXPECT_EQ(s.page_waste_bytes, 4'094'000u);
  EXPECT_EQ(s.syscalls[static_cast<int>(format::SyscallKind::kMmap)], 1000u);
  EXPECT_EQ(s.syscalls[static_cast<int>(format::SyscallKind::kMunmap)], 1000u);
  EXPECT_EQ(SumSyscalls(s.syscalls), 2000u);
  EXPECT_EQ(r.peak_mapped_bytes, 4'096'000u);
  EXPECT_EQ(r.peak.live_mappings, 1000u);
  EXPECT_EQ(r.leaked_allocations, 0u);
  // The mappings are the mmap line's; the munmaps are charged their own line.
  const CallSite* map = SiteOf(r, t.site_map());
  ASSERT_NE(map, nullptr);
  EXPECT_EQ(map->cost.mappings, 1000u);
  EXPECT_EQ(map->cost.page_waste_bytes, 4'094'000u);
  EXPECT_EQ(map->cost.syscalls[static_cast<int>(format::SyscallKind::kMmap)], 1000u);
  const CallSite* unmap = SiteOf(r, t.site_free());
  ASSERT_NE(unmap, nullptr);
  EXPECT_EQ(unmap->cost.syscalls[static_cast<int>(format::SyscallKind::kMunmap)], 1000u);
  EXPECT_EQ(unmap->cost.mappings, 0u);
  // What if the pages were 16 KiB: 1000 x (16384 - 2) wasted.
  ASSERT_EQ(r.what_if_page_sizes.size(), 2u);
  EXPECT_EQ(r.what_if_page_sizes[0].page_size, 4096u);
  EXPECT_EQ(r.what_if_page_sizes[0].page_waste_bytes, 4'094'000u);
  EXPECT_EQ(r.what_if_page_sizes[1].page_size, 16384u);
  EXPECT_EQ(r.what_if_page_sizes[1].page_bytes, 16'384'000u);
  EXPECT_EQ(r.what_if_page_sizes[1].page_waste_bytes, 16'382'000u);
  EXPECT_EQ(r.what_if_page_sizes[1].peak_page_bytes, 16'384'000u);
}

TEST(ReplayFromMemory, MappingsUnmappedOneByOneNeverHoldMoreThanOnePage) {
  TraceBuilder t;
  for (uint64_t i = 0; i < 1000; ++i) {
    t.Mmap(kBase + i * 4096, 2);
    t.Munmap(kBase + i * 4096, 2);
  }
  Report r = t.Replay();
  EXPECT_EQ(r.summary.page_waste_bytes, 4'094'000u);
  EXPECT_EQ(r.peak_mapped_bytes, 4096u);
  EXPECT_EQ(r.peak.live_mappings, 1u);
  EXPECT_EQ(r.what_if_page_sizes[1].peak_page_bytes, 16384u);
}

TEST(ReplayFromMemory, BlocksLiveAtTheEndAreTheLeaksOfTheSiteThatAllocatedThem) {
  TraceBuilder t;
  for (uint64_t i = 0; i < 10; ++i) t.Malloc(kBase + i * 128, 100);
  for (uint64_t i = 0; i < 7; ++i) t.Free(kBase + i * 128);
  Report r = t.Replay();
  EXPECT_EQ(r.summary.allocations, 10u);
  EXPECT_EQ(r.summary.frees, 7u);
  EXPECT_EQ(r.summary.requested_bytes, 1000u);
  EXPECT_EQ(r.leaked_allocations, 3u);
  EXPECT_EQ(r.leaked_bytes, 300u);
  EXPECT_EQ(r.peak_live_bytes, 1000u);
  const CallSite* site = SiteOf(r, t.site_free());
  ASSERT_NE(site, nullptr);
  EXPECT_EQ(site->cost.allocations, 10u);
  EXPECT_EQ(site->cost.frees, 7u);  // charged to the site that allocated them
  EXPECT_EQ(site->leaked_allocations, 3u);
  EXPECT_EQ(site->leaked_bytes, 300u);
  EXPECT_EQ(SumSyscalls(r.summary.syscalls), 0u);
}

}  // namespace
}  // namespace pagewaste
