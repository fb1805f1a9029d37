// The replay from memory: traces written in the test with the producers'
// record writer, replayed, and every figure checked by hand.
#include "replay.h"

#include <gtest/gtest.h>

#include <sys/mman.h>

#include <vector>

#include "producer/record_writer.h"

namespace pagewaste {
namespace {

// Finished chunks into a byte vector.
class MemorySink : public ChunkSink {
 public:
  uint8_t* NextChunk(size_t) override { return nullptr; }
  bool FinishChunk(const uint8_t* data, size_t size) override {
    bytes.insert(bytes.end(), data, data + size);
    return true;
  }
  std::vector<uint8_t> bytes;
};

// A process's trace, written event by event, with two call sites: the stack
// nodes kSiteMap (the program's mmap line) and kSiteFree (its munmap and
// free line). One event per microsecond.
class TraceBuilder {
 public:
  TraceBuilder() {
    HeaderInfo h;
    h.process.page_size = 4096;
    h.process.pid = 4242;
    h.process.ppid = 1;
    h.process.start_monotonic_ns = 1;
    h.exe = "/usr/bin/example";
    uint8_t header[4096];
    size_t n = EncodeHeader(h, header, sizeof header);
    sink_.bytes.assign(header, header + n);
    ModuleSegment segment{0x1000, 0x1000};
    writer_.ModuleMap(1);
    writer_.Module(0x400000, &segment, 1, "/usr/bin/example", "");
    uint64_t main = writer_.StackNode(0, 0x401100);
    site_map_ = writer_.StackNode(main, 0x401200);
    site_free_ = writer_.StackNode(main, 0x401300);
  }

  uint64_t site_map() const { return site_map_; }
  uint64_t site_free() const { return site_free_; }

  void Mmap(uint64_t address, uint64_t length) {
    MmapEvent e;
    e.prefix = Next(site_map_);
    e.address = address;
    e.length = length;
    e.prot = PROT_READ | PROT_WRITE;
    e.map_flags = MAP_PRIVATE | MAP_ANONYMOUS;
    e.syscalls.Add(format::SyscallKind::kMmap);
    writer_.Mmap(e);
  }
  void Munmap(uint64_t address, uint64_t length) {
    MunmapEvent e;
    e.prefix = Next(site_free_);
    e.address = address;
    e.length = length;
    e.syscalls.Add(format::SyscallKind::kMunmap);
    writer_.Munmap(e);
  }
  void Malloc(uint64_t address, uint64_t requested) {
    AllocEvent e;
    e.prefix = Next(site_free_);
    e.address = address;
    e.requested = requested;
    e.usable = requested + 8;
    writer_.Alloc(e);
  }
  void Free(uint64_t address) {
    FreeEvent e;
    e.prefix = Next(0);  // frees of heap blocks carry no stack
    e.address = address;
    writer_.Free(e);
  }

  Report Replay() {
    writer_.SetLifetime(1, time_ns_ + 1);
    writer_.End(format::EndReason::kExit, 0, SyscallCounts{});
    ReplayOptions options;
    options.symbolize = false;
    options.what_if_page_sizes = {4096, 16384};
    Report report;
    std::string err;
    EXPECT_TRUE(ReplaySource(MemorySource(sink_.bytes), "memory", 0, options, &report, &err))
        << err;
    return report;
  }

 private:
  EventPrefix Next(uint64_t stack) {
    time_ns_ += 1000;
    return {time_ns_, 4242, stack};
  }

  MemorySink sink_;
  uint8_t buffer_[RecordWriter::kMinBuffer] = {};
  RecordWriter writer_{buffer_, sizeof buffer_, &sink_};
  uint64_t site_map_ = 0, site_free_ = 0;
  uint64_t time_ns_ = 0;
};

const CallSite* SiteOf(const Report& r, uint64_t stack) {
  for (const CallSite& s : r.call_sites)
    if (s.stack_id == stack) return &s;
  return nullptr;
}

constexpr uint64_t kBase = 0x7f0000000000;

TEST(Replay, AThousandTwoByteMappingsAreAThousandPagesOfWhich4094000BytesWaste) {
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

TEST(Replay, MappingsUnmappedOneByOneNeverHoldMoreThanOnePage) {
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

TEST(Replay, BlocksLiveAtTheEndAreTheLeaksOfTheSiteThatAllocatedThem) {
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
