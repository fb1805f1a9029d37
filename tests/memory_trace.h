// A process's trace written in memory with the producers' record writer,
// and replayed: what tool_test checks the replay, check and diff against.
#pragma once

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <string>
#include <vector>

#include "memory_sink.h"
#include "producer/record_writer.h"
#include "replay/replay.h"

namespace pagewaste::memory_trace {

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

  // Ends the trace and replays it. Its module is not on disk: each site's
  // frames are module+offset, which keep its sites apart.
  Report Replay() {
    writer_.SetLifetime(1, time_ns_ + 1);
    writer_.End(format::EndReason::kExit, 0, SyscallCounts{});
    ReplayOptions options;
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

}  // namespace pagewaste::memory_trace
