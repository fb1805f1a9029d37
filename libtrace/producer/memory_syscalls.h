// The events both producers build from a memory system call, the shim from
// its wrapper's arguments and the ptrace backend from the registers at the
// call's entry and exit: both describe the call as the kernel saw it, so
// that the two traces of the same call are the same records.
#pragma once

#include <cstdint>

#include "format/events.h"
#include "live_mappings.h"
#include "record_writer.h"
#include "format/usage_estimate.h"

namespace pagewaste::producer {

struct MemorySyscall {
  long nr = 0;  // SYS_mmap, SYS_munmap, SYS_mremap, SYS_brk, SYS_mprotect, SYS_madvise
  uint64_t args[6] = {};
  int64_t result = 0;  // as the kernel returns it: -errno on failure
  uint64_t ns = 0;     // time in the kernel
  // brk: the break before the call.
  uint64_t old_break = 0;
  // munmap: what the range was used for, measured before it went (null if
  // it could not be).
  const UsageEstimate* usage = nullptr;
};

// Writes the call's event and keeps `live` (the program's private anonymous
// mappings) up to date.
void RecordMemorySyscall(RecordWriter* writer, LiveMappings* live, const EventPrefix& prefix,
                         const MemorySyscall& call);

// At the end of a trace: a Munmap (kFlagAtExit) for each mapping in `live`,
// with what it was used for as measure(address, length, &usage) finds it.
template <typename Measure>
void RecordLiveMappingsAtExit(RecordWriter* writer, const LiveMappings& live,
                              const EventPrefix& prefix, Measure measure) {
  live.ForEach([&](uint64_t address, uint64_t length) {
    MunmapEvent e;
    e.prefix = prefix;
    e.address = address;
    e.length = length;
    e.flags = format::kFlagAtExit;
    UsageEstimate usage;
    if (measure(address, length, &usage)) AttachUsage(usage, &e);
    writer->Munmap(e);
  });
}

}  // namespace pagewaste::producer
