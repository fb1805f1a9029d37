// The shim's one trace (g_trace): the producer library's trace file behind
// the writer lock, the mode that says whether calls are traced, and the
// operations of a trace's life in a process that can fork, exec, exit in
// several ways and die of a signal: Open and Begin, AfterForkChild, End and
// ResumeAfterFailedExec. The tracker records through Locked(); the
// lifecycle code (lifecycle.cpp) decides when each operation runs. Constant-
// initialized and allocation-free.
#pragma once

#include <sched.h>

#include <atomic>
#include <cstdint>

#include "format.h"
#include "producer/trace_file.h"
#include "usage_estimate.h"

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
    while (!owner_.compare_exchange_weak(expected, tid, std::memory_order_acquire)) {
      expected = 0;
      sched_yield();
    }
  }
  bool TryLockFor(uint32_t tid, int attempts) {
    for (int i = 0; i < attempts; ++i) {
      uint32_t expected = 0;
      if (owner_.compare_exchange_strong(expected, tid, std::memory_order_acquire)) return true;
      sched_yield();
    }
    return false;
  }
  bool HeldBy(uint32_t tid) const { return owner_.load(std::memory_order_relaxed) == tid; }
  void Unlock() { owner_.store(0, std::memory_order_release); }

 private:
  std::atomic<uint32_t> owner_{0};
};

// Who the process is and how its trace is to be written: read once at the
// start (lifecycle.cpp); a forked child changes the pid.
struct ProcessInfo {
  uint32_t page_size = 4096;
  uint32_t pid = 0;
  uint64_t session_id = 0;
  uint64_t start_monotonic_ns = 0;  // on the coarse clock (clock.h)
  uint32_t time_resolution_ns = 1;
  uint64_t sample_interval = 0;   // pagewaste run --sample, for the header
  const char* pattern = nullptr;  // the trace file's name (file_sink.h)
  bool use_mapping = true;        // PAGEWASTE_SINK=write turns it off
  char exe_path[4096] = {};
  const char* exe_name = "";
  int argc = 0;
  const char* const* argv = nullptr;
};

class Trace {
 public:
  constexpr Trace() = default;
  Trace(const Trace&) = delete;
  Trace& operator=(const Trace&) = delete;

  TraceMode mode() const { return mode_.load(std::memory_order_acquire); }
  bool tracing() const { return mode_.load(std::memory_order_relaxed) == TraceMode::kTracing; }
  // The one caller that gets true is to Start the trace (or Disable it).
  bool ClaimStart();
  void Disable() { mode_.store(TraceMode::kDisabled); }
  const ProcessInfo& info() const { return info_; }
  ProcessInfo& mutable_info() { return info_; }

  // Starting: Open creates the trace file (from then on the shim's own
  // system calls are counted) and reserves the stack table; Begin writes
  // the preamble (header, module map); Resume turns tracing on.
  enum class OpenResult { kOpen, kNoFile, kNoStackTable };
  OpenResult Open();
  void Begin(uint32_t ppid) { WritePreamble(ppid); }
  void Resume() { mode_.store(TraceMode::kTracing, std::memory_order_release); }

  // fork(): the parent holds the lock across it, so that the child's copy
  // of the trace is between records; the child starts a trace of its own
  // (false: it could not create its file, and is not traced).
  void BeforeFork();
  void AfterForkParent();
  bool AfterForkChild();

  // The End record: what the program's mappings still there were used for,
  // every count, the reason and status. From a fatal-signal handler the
  // lock is waited for a bounded time only. Later calls do nothing.
  void End(format::EndReason reason, int64_t status);
  // Takes back an End(kExec) whose exec failed, and goes on tracing.
  void ResumeAfterFailedExec();

  // Runs f(file, tid) under the writer lock if the trace is on: every
  // record goes through here.
  template <typename F>
  void Locked(F f) {
    uint32_t tid = CurrentTid();
    bool held = lock_.HeldBy(tid);  // by a ReleaseOrder of this thread
    if (!held) lock_.Lock(tid);
    if (tracing()) f(file_, tid);
    if (!held) lock_.Unlock();
  }
  // The writer lock, held across a call that gives memory back (see
  // ReleaseOrder in tracker.h). Returns the holder's tid, 0 if not taken.
  uint32_t HoldForRelease();
  void Release() { lock_.Unlock(); }

  // Memory system calls the shim made itself outside its trace file.
  void CountOwn(format::SyscallKind kind) {
    own_syscalls_[static_cast<int>(kind)].fetch_add(1, std::memory_order_relaxed);
  }
  void CountOwn(const SyscallCounts& counts);
  // A new module map (dlopen, dlclose). Caller holds the lock.
  void WriteModules(producer::TraceFile& file);

  // The calling thread's id, cached per thread.
  uint32_t CurrentTid();
  // Nanoseconds since the trace started, on the coarse clock (clock.h).
  uint64_t NowNs() const;

 private:
  void WritePreamble(uint32_t ppid);
  // The observer handshake's mark (format.h): once at the start of a
  // trace, once before its End record.
  void MarkForObserver();
  SyscallCounts OwnSyscalls() const;

  std::atomic<TraceMode> mode_{TraceMode::kUninitialized};
  OwnerLock lock_;
  ProcessInfo info_;
  producer::TraceFile file_;
  uint64_t module_generation_ = 0;
  int64_t exec_end_offset_ = -1;  // trace size before an exec's End record
  std::atomic<uint32_t> own_syscalls_[format::kSyscallKinds] = {};
  // Filled in by a ptrace observer, if one runs (format.h's handshake).
  format::ObservedBlock observed_ = {};
};

extern Trace g_trace;

// Resident pages and used extent of [addr, addr + length) of this process,
// before it is unmapped; false if it cannot be told (not mapped).
bool MeasureUsage(uint64_t addr, uint64_t length, UsageEstimate* usage);

}  // namespace pagewaste::shim
