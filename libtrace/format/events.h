// The decoded form of trace records: what the writer takes and the reader
// gives back. Plain structs with no owning members, so the shim can fill
// them on its hot path without allocating.
#pragma once

#include <cstdint>

#include "format.h"

namespace pagewaste {

// What a trace's header says of its process, apart from the strings. The
// shim fills it for the writer (HeaderInfo); the reader returns it
// (TraceHeader).
struct ProcessIdentity {
  uint32_t page_size = 0;
  uint32_t pid = 0;
  uint32_t ppid = 0;
  uint64_t session_id = 0;         // shared by the processes of one run
  uint64_t start_realtime_ns = 0;  // CLOCK_REALTIME at start
  uint64_t start_monotonic_ns = 0; // origin of event timestamps
  format::Backend backend = format::Backend::kPreload;
  uint32_t time_resolution_ns = 1;  // how finely event times tell apart
  uint64_t sample_interval_bytes = 0;  // 0: not sampled (format.h)
};

struct SyscallCounts {
  uint32_t count[format::kSyscallKinds] = {};
  uint64_t ns = 0;  // time spent in them, where measured

  void Add(format::SyscallKind kind, uint32_t n = 1) {
    count[static_cast<int>(kind)] += n;
  }
  uint64_t Total() const {
    uint64_t t = 0;
    for (uint32_t c : count) t += c;
    return t;
  }
};

// A ptrace observer's block (format::ObservedBlock) as an End record's
// counts: those after the shim started, and those before. Zero unless the
// observer wrote the block.
inline void ObservedCounts(const format::ObservedBlock& block, SyscallCounts* observed,
                           SyscallCounts* before_start) {
  if (block.magic != format::kObservedMagic) return;
  for (int i = 0; i < format::kSyscallKinds; ++i) {
    observed->count[i] = block.counts[i];
    before_start->count[i] = block.before_start[i];
  }
}

// Fields every event carries. time_ns counts from the trace's
// start_monotonic_ns; stack is an interned stack id (0: none recorded).
struct EventPrefix {
  uint64_t time_ns = 0;
  uint32_t tid = 0;
  uint64_t stack = 0;
  // The event's place in the process's order, in thread chunks (format.h);
  // 0 in plain chunks, whose order is the file's.
  uint64_t seq = 0;
};

struct AllocEvent {
  EventPrefix prefix;
  format::AllocKind kind = format::AllocKind::kMalloc;
  uint64_t address = 0;
  uint64_t requested = 0;
  uint64_t usable = 0;
  uint64_t alignment = 0;
  uint64_t mapped_bytes = 0;  // its own mapping's bytes; 0 if on shared heap pages
  uint32_t flags = 0;
  SyscallCounts syscalls;
};

struct FreeEvent {
  EventPrefix prefix;
  format::FreeKind kind = format::FreeKind::kFree;
  uint64_t address = 0;
  uint64_t mapped_bytes = 0;
  uint32_t flags = 0;
  SyscallCounts syscalls;
};

struct MmapEvent {
  EventPrefix prefix;
  uint64_t address = 0;  // the result; meaningless when kFlagFailed is set
  uint64_t length = 0;
  uint32_t prot = 0;
  uint32_t map_flags = 0;
  int32_t fd = -1;
  uint64_t offset = 0;
  uint32_t flags = 0;
  SyscallCounts syscalls;
};

struct MunmapEvent {
  EventPrefix prefix;
  uint64_t address = 0;
  uint64_t length = 0;
  uint32_t flags = 0;
  uint64_t resident_pages = 0;  // with kFlagUsageMeasured
  uint64_t used_bytes = 0;      // with kFlagUsageMeasured
  SyscallCounts syscalls;
};

struct MremapEvent {
  EventPrefix prefix;
  uint64_t old_address = 0;
  uint64_t old_length = 0;
  uint64_t new_length = 0;
  uint32_t mremap_flags = 0;
  uint64_t new_address = 0;
  uint32_t flags = 0;
  SyscallCounts syscalls;
};

struct BrkEvent {
  EventPrefix prefix;
  format::BrkKind kind = format::BrkKind::kBrk;
  uint64_t old_break = 0;
  uint64_t new_break = 0;
  int64_t argument = 0;  // sbrk's increment, or brk's requested break
  uint32_t flags = 0;
  SyscallCounts syscalls;
};

struct MemoryCallEvent {
  EventPrefix prefix;
  format::SyscallKind kind = format::SyscallKind::kMadvise;
  uint64_t address = 0;
  uint64_t length = 0;
  uint64_t argument = 0;  // madvise's advice, mprotect's prot
  uint32_t flags = 0;
  SyscallCounts syscalls;
};

struct ModuleSegment {
  uint64_t start = 0;
  uint64_t length = 0;
};

inline constexpr int kMaxModuleSegments = 16;

struct EndEvent {
  format::EndReason reason = format::EndReason::kDetach;
  int64_t status = format::kUnknownStatus;
  uint64_t records = 0;
  uint64_t events = 0;
  uint64_t stack_nodes = 0;
  uint64_t chunks_lost = 0;
  uint64_t bytes_lost = 0;
  // The shim's own system calls from the creation of the trace file to this
  // record (its file windows, stack table, libunwind's caches): in strace's
  // counts for the process, in none of the events.
  SyscallCounts shim_syscalls;
  // Every memory system call of the process over the same span, counted by
  // a ptrace observer beside the shim (pagewaste run --observe-syscalls);
  // all zero without one.
  SyscallCounts observed_syscalls;
  // The observer's count from the image's exec to the shim's start.
  SyscallCounts before_start_syscalls;
  // When the producer began and ended this process's trace, on the fine
  // monotonic clock (event times may be on the coarse one): two short
  // processes within one clock tick are told apart. 0: not known (before
  // version 6, or an End written for a process that could not).
  uint64_t started_ns = 0;
  uint64_t ended_ns = 0;
};

}  // namespace pagewaste
