// State shared by the tracker (tracker.cpp) and the lifecycle code
// (lifecycle.cpp). Internal to the shim. All of it is constant-initialized.
#pragma once

#include <sched.h>

#include <atomic>
#include <cstdint>

#include "file_sink.h"
#include "live_mappings.h"
#include "module_map.h"
#include "record_writer.h"
#include "sampled_blocks.h"
#include "stack_table.h"

namespace pagewaste::shim {

enum class TraceMode : int {
  kUninitialized,
  kInitializing,
  kTracing,
  kFinished,  // End written (exit, exec, signal); calls pass through
  kDisabled,  // could not start (no trace file, missing symbol)
};

// A spin lock that knows its owner, so a fatal-signal handler can tell
// "this thread holds it" (flush anyway: records are committed whole) from
// "another thread holds it" (wait a bounded time).
class OwnerLock {
 public:
  void Lock(uint32_t tid) {
    uint32_t expected = 0;
    while (!owner_.compare_exchange_weak(expected, tid,
                                         std::memory_order_acquire)) {
      expected = 0;
      sched_yield();
    }
  }
  bool TryLockFor(uint32_t tid, int attempts) {
    for (int i = 0; i < attempts; ++i) {
      uint32_t expected = 0;
      if (owner_.compare_exchange_strong(expected, tid,
                                         std::memory_order_acquire))
        return true;
      sched_yield();
    }
    return false;
  }
  bool HeldBy(uint32_t tid) const {
    return owner_.load(std::memory_order_relaxed) == tid;
  }
  void Unlock() { owner_.store(0, std::memory_order_release); }

 private:
  std::atomic<uint32_t> owner_{0};
};

inline constexpr size_t kChunkBytes = 256 << 10;

struct TraceState {
  std::atomic<TraceMode> mode{TraceMode::kUninitialized};
  OwnerLock lock;
  FileSink sink;
  uint8_t buffer[kChunkBytes] = {};
  RecordWriter writer{buffer, kChunkBytes, &sink};
  StackTable stacks;
  LiveMappings live_mappings;  // the program's private anonymous mappings
  // pagewaste run --sample: bytes per sample on average (0: record all),
  // and the live blocks whose Alloc was recorded.
  uint64_t sample_interval = 0;
  SampledBlocks sampled;
  CodeRange own_code;       // the shim: its frames are dropped from stacks
  CodeRange unwinder_code;  // libunwind: its memory calls are the shim's own
  bool glibc_malloc = false;
  uint32_t page_size = 4096;
  uint32_t pid = 0;
  uint64_t session_id = 0;
  uint64_t start_monotonic_ns = 0;  // on the coarse clock (clock.h)
  uint32_t time_resolution_ns = 1;
  uint64_t heap_start = 0;  // the kernel's start_brk: where the brk heap begins
  uint64_t module_generation = 0;
  int64_t exec_end_offset = -1;  // trace size before an exec's End record
  bool use_mapping = true;        // PAGEWASTE_SINK=write turns it off
  std::atomic<int64_t> exit_status{format::kUnknownStatus};
  // Filled in by a ptrace observer, if one runs (format.h's handshake).
  format::ObservedBlock observed = {};
  // Memory system calls the shim made outside its sink, by kind.
  std::atomic<uint32_t> shim_syscalls[format::kSyscallKinds] = {};
  const char* pattern = nullptr;
  char exe_path[4096] = {};
  const char* exe_name = "";
};

extern TraceState g_state;

uint32_t CurrentTid();
// The observer handshake's mark (format.h): once at the start of a trace,
// once before its End record.
void MarkForObserver();

// At the end of the trace, under the lock: a Munmap (kFlagAtExit) with the
// measured use of each of the program's mappings still there.
void RecordLiveMappingsAtExit();
// Everything the shim made since it created the trace file.
SyscallCounts ShimSyscalls();
// Writes the file header, the module map and (in a forked child) every
// stack node known so far. Caller holds the lock.
void WriteTracePreamble(uint32_t ppid);

}  // namespace pagewaste::shim
