// The malloc family's records under attach, from either source: the
// uprobes' (allocator_calls.bpf.c: pw_alloc_event, pw_free_event) or the
// injected feed's (inject/feed_layout.h). Each becomes an Alloc or Free of
// its process's trace, with glibc's chunk words read as the shim reads
// them, and with the system calls the allocator made inside the call,
// which the BPF program marks and this holds, by thread, until the call's
// record comes.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>

#include "bpf_events.h"
#include "format/format.h"
#include "inject/feed_layout.h"
#include "ptrace/process_recorder.h"

namespace pagewaste::bpf {

class AllocatorRecords {
 public:
  using RecorderOf = std::function<ptrace::ProcessRecorder*(pid_t tgid)>;
  // sample_bytes: attach --sample (the uprobes say which old blocks of a
  // realloc were recorded).
  AllocatorRecords(RecorderOf recorder_of, uint64_t sample_bytes)
      : recorder_of_(std::move(recorder_of)), sample_bytes_(sample_bytes) {}

  // A memory system call (nr) made by thread tid inside an allocator call:
  // charged to the record of the call, the next of the thread's at or
  // after time_ns.
  void AllocatorSyscall(pid_t tid, uint64_t time_ns, long nr, uint64_t kernel_ns);
  // The uprobes' records.
  void Allocation(const void* data, size_t size);
  void Free(const pw_event_header& header, format::FreeKind kind, uint64_t address,
            const uint64_t chunk_words[2]);
  // The feed's.
  void Feed(const inject::FeedRecord& r);

 private:
  struct HeldSyscall {
    uint64_t time_ns;
    format::SyscallKind kind;
    uint64_t kernel_ns;
  };
  void Free(pid_t tgid, pid_t tid, uint64_t time_ns, format::FreeKind kind, uint64_t address,
            const uint64_t chunk_words[2]);
  SyscallCounts TakeAllocatorSyscalls(pid_t tid, uint64_t time_ns);

  RecorderOf recorder_of_;
  uint64_t sample_bytes_;
  std::map<pid_t, std::deque<HeldSyscall>> allocator_syscalls_;  // by thread
};

}  // namespace pagewaste::bpf
