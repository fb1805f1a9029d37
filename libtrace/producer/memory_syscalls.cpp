// The events both producers build from a memory system call's arguments and
// result (memory_syscalls.h).
#include "memory_syscalls.h"

#include <sys/mman.h>
#include <sys/syscall.h>

#include "live_mappings.h"
#include "format/syscall_kind.h"

namespace pagewaste::producer {
namespace {

bool FailedAddress(int64_t result) { return result < 0 && result > -4096; }

}  // namespace

void RecordMemorySyscall(RecordWriter* writer, LiveMappings* live, const EventPrefix& prefix,
                         const MemorySyscall& call) {
  SyscallCounts syscalls;
  syscalls.Add(SyscallKindOf(call.nr));
  syscalls.ns = call.ns;
  const uint64_t* a = call.args;
  auto result = static_cast<uint64_t>(call.result);
  switch (call.nr) {
    case SYS_mmap: {
      MmapEvent e;
      e.prefix = prefix;
      bool failed = FailedAddress(call.result);
      e.address = failed ? 0 : result;
      e.length = a[1];
      e.prot = static_cast<uint32_t>(a[2]);
      e.map_flags = static_cast<uint32_t>(a[3]);
      e.fd = static_cast<int32_t>(a[4]);
      e.offset = a[5];
      if (failed) e.flags |= format::kFlagFailed;
      if (!(e.map_flags & MAP_ANONYMOUS)) e.flags |= format::kFlagFileBacked;
      e.syscalls = syscalls;
      writer->Mmap(e);
      if (!failed && (e.map_flags & MAP_ANONYMOUS) && (e.map_flags & MAP_PRIVATE))
        live->Add(e.address, e.length);
      return;
    }
    case SYS_munmap: {
      MunmapEvent e;
      e.prefix = prefix;
      e.address = a[0];
      e.length = a[1];
      if (call.result != 0) e.flags |= format::kFlagFailed;
      if (call.usage && call.result == 0) AttachUsage(*call.usage, &e);
      e.syscalls = syscalls;
      writer->Munmap(e);
      if (call.result == 0) live->Remove(a[0], a[1]);
      return;
    }
    case SYS_mremap: {
      MremapEvent e;
      e.prefix = prefix;
      bool failed = FailedAddress(call.result);
      e.old_address = a[0];
      e.old_length = a[1];
      e.new_length = a[2];
      e.mremap_flags = static_cast<uint32_t>(a[3]);
      e.new_address = failed ? 0 : result;
      if (failed) e.flags |= format::kFlagFailed;
      e.syscalls = syscalls;
      writer->Mremap(e);
      if (!failed) live->Move(e.old_address, e.new_address, e.new_length);
      return;
    }
    case SYS_brk: {
      BrkEvent e;
      e.prefix = prefix;
      e.kind = format::BrkKind::kBrk;
      e.old_break = call.old_break;
      e.new_break = result;
      e.argument = static_cast<int64_t>(a[0]);
      // brk returns the current break: asking for another one and getting
      // something else back is a failure.
      if (a[0] && result != a[0]) e.flags |= format::kFlagFailed;
      e.syscalls = syscalls;
      writer->Brk(e);
      return;
    }
    default: {
      MemoryCallEvent e;
      e.prefix = prefix;
      e.kind = SyscallKindOf(call.nr);
      e.address = a[0];
      e.length = a[1];
      e.argument = a[2];
      if (call.result != 0) e.flags |= format::kFlagFailed;
      e.syscalls = syscalls;
      writer->MemoryCall(e);
    }
  }
}

}  // namespace pagewaste::producer
