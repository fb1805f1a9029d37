// The shim's one trace (g_trace): the producer library's trace file, the
// writers that fill it, the mode that says whether calls are traced, and
// the operations of a trace's life in a process that can fork, exec, exit
// in several ways and die of a signal: Open and Begin, AfterForkChild, End
// and ResumeAfterFailedExec. The tracker records through Record(); the
// lifecycle code (lifecycle.cpp) decides when each operation runs.
// Constant-initialized and allocation-free.
//
// Threads do not share a writer: each writes thread chunks of its own
// (format.h, kChunkThread) through its ThreadSlot, and numbers every event
// from one counter, so that the reader can put the threads' events back in
// order. The hot path takes no lock: a number from the counter (one atomic
// add) and the thread's own chunk. Locks remain where threads share a
// table: the stack table when a stack has frames the thread has not
// interned last time, the live mappings for a memory system call, the file
// when a chunk is full.
#pragma once

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cstdint>

#include "format/format.h"
#include "producer/trace_file.h"
#include "format/usage_estimate.h"

namespace pagewaste::shim {

enum class TraceMode : int {
  kUninitialized,
  kInitializing,
  kTracing,
  kFinished,  // End written (exit, exec, signal); calls pass through
  kDisabled,  // could not start (no trace file, missing symbol)
};

// A spin lock that knows its owner, so a fatal-signal handler can tell
// "this thread holds it" (go on: records are committed whole) from
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
  uint64_t started_ns = 0;  // this process's trace began, on the fine clock
  uint32_t time_resolution_ns = 1;
  uint64_t sample_interval = 0;   // pagewaste run --sample, for the header
  const char* pattern = nullptr;  // the trace file's name (file_sink.h)
  bool use_mapping = true;        // PAGEWASTE_SINK=write turns it off
  char exe_path[4096] = {};
  const char* exe_name = "";
  int argc = 0;
  const char* const* argv = nullptr;
};

// No seq: a ThreadSlot's `pending` when it is between records.
inline constexpr uint64_t kNoSeq = ~uint64_t{0};

// One thread's writer of thread chunks, and the seq it is about to write
// (so that a chunk started by another thread can say which events may still
// come: its low_seq). Slots are reused once their thread has exited.
class ThreadSlot : public ChunkSink {
 public:
  // A thread's first chunk is small (a short-lived thread takes little of
  // the file); each next one twice the last, up to kChunkBytes.
  static constexpr size_t kFirstChunkBytes = 64 << 10;
  static constexpr size_t kChunkBytes = 1 << 20;

  std::atomic<uint32_t> owner{0};  // tid; 0: free
  // Not kNoSeq while the owner writes a record (or holds a seq across a
  // call that gives memory back): a lower bound of that record's seq.
  std::atomic<uint64_t> pending{kNoSeq};
  bool holding = false;  // a ReleaseOrder of the owner holds a seq
  bool shared = false;   // the overflow slot: threads take overflow_lock in turn
  RecordWriter writer{nullptr, kChunkBytes, this};

  // The chunk is mapped from the file where it lies, taken when it starts;
  // where the file cannot be mapped, it is filled in a buffer of the slot's
  // and appended when done, and until then its first event is counted as
  // still to come (buffered_first).
  uint8_t* NextChunk(size_t capacity) override;
  bool FinishChunk(const uint8_t* data, size_t size) override;
  uint64_t LowSeq() override { return low_seq_; }
  // A forked child's copy: the chunk is the parent's; let it go unwritten.
  void Abandon();

  std::atomic<uint64_t> buffered_first{kNoSeq};

 private:
  uint8_t* mapped_ = nullptr;  // the chunk, when the file is mapped
  size_t mapped_size_ = 0;
  size_t next_size_ = kFirstChunkBytes;
  uint64_t low_seq_ = 0;
  uint8_t* buffer_ = nullptr;  // the chunk, when it is not
};

// initial-exec: a dynamic TLS access could itself call malloc.
extern thread_local ThreadSlot* t_slot __attribute__((tls_model("initial-exec")));
extern thread_local uint32_t t_slot_pid __attribute__((tls_model("initial-exec")));

class Trace {
 public:
  constexpr Trace() = default;
  Trace(const Trace&) = delete;
  Trace& operator=(const Trace&) = delete;

  // Threads with a slot of their own at once; more share one, in turn.
  static constexpr uint32_t kSlots = 16384;

  TraceMode mode() const { return mode_.load(std::memory_order_acquire); }
  bool tracing() const { return mode_.load(std::memory_order_seq_cst) == TraceMode::kTracing; }
  // The one caller that gets true is to start the trace (or Disable it).
  bool ClaimStart();
  void Disable() { mode_.store(TraceMode::kDisabled); }
  const ProcessInfo& info() const { return info_; }
  ProcessInfo& mutable_info() { return info_; }

  // Starting: Open creates the trace file (from then on the shim's own
  // system calls are counted) and reserves the stack table and the thread
  // slots; Begin writes the preamble (header, module map); Resume turns
  // tracing on.
  enum class OpenResult { kOpen, kNoFile, kNoStackTable };
  OpenResult Open();
  // The trace file's path; after a failed Open, the path it could not create.
  const char* path() const { return file_.sink().path(); }
  // False (errno set, the file deleted) if the file cannot take the header.
  bool Begin(uint32_t ppid);
  void Resume() { mode_.store(TraceMode::kTracing, std::memory_order_release); }

  // fork(): the parent holds every lock across it, so that the child's
  // copies of the shared tables are whole; the child starts a trace of its
  // own (false: it could not create its file, and is not traced).
  void BeforeFork();
  void AfterForkParent();
  bool AfterForkChild();

  // The End record: every thread's chunk finished, what the program's
  // mappings still there were used for, every count, the reason and status.
  // From a fatal-signal handler, threads in the middle of a record are
  // waited for a bounded time only. Later calls do nothing.
  void End(format::EndReason reason, int64_t status);
  // Takes back an End(kExec) whose exec failed, and goes on tracing.
  void ResumeAfterFailedExec();

  // Runs f(writer, tid, seq) with the calling thread's writer and the
  // event's seq, if the trace is on: every record goes through here.
  // `held`: the seq a ReleaseOrder of this thread took for this record
  // (kNoSeq: take one now).
  template <typename F>
  void Record(F f, uint64_t held = kNoSeq);
  // The seq of a call that gives memory back, taken before the real call
  // (see ReleaseOrder in tracker.h); kNoSeq if not tracing.
  uint64_t HoldSeq();
  void ReleaseSeq();

  // Interns a stack through the calling thread's writer (stack_table.h).
  uint64_t InternStack(RecordWriter* writer, const uintptr_t* ips, int depth, uint64_t parent,
                       uint64_t* ids);
  // A memory system call's event, with the live mappings kept.
  void RecordMemorySyscall(RecordWriter* writer, const EventPrefix& prefix,
                           const producer::MemorySyscall& call);
  // A new module map (dlopen, dlclose), as the event seq.
  void WriteModules(RecordWriter* writer, uint64_t seq);

  // Memory system calls the shim made itself outside its trace file.
  void CountOwn(format::SyscallKind kind) {
    own_syscalls_[static_cast<int>(kind)].fetch_add(1, std::memory_order_relaxed);
  }
  void CountOwn(const SyscallCounts& counts);

  // The calling thread's id, cached per thread.
  uint32_t CurrentTid();
  // Nanoseconds since the trace started, on the coarse clock (clock.h).
  uint64_t NowNs() const;

 private:
  friend class ThreadSlot;

  bool WritePreamble(uint32_t ppid);
  // The observer handshake's mark (format.h): once at the start of a
  // trace, once before its End record.
  void MarkForObserver();
  SyscallCounts OwnSyscalls() const;
  // The calling thread's slot, claimed on its first record (null if none
  // can be had).
  ThreadSlot* Slot();
  ThreadSlot* ClaimSlot(uint32_t tid);
  static void ReleaseSlot(void* slot);  // at the thread's exit
  // The lowest seq of a record not yet in the file: one being written, or
  // in a chunk not appended yet. Under sink_lock_.
  uint64_t LowSeq() const;
  // Every slot's chunk finished (End): threads in the middle of a record
  // are waited for, `attempts` times at most each.
  void FinishSlots(uint32_t tid, int attempts);

  std::atomic<TraceMode> mode_{TraceMode::kUninitialized};
  OwnerLock lock_;  // Start, End, fork, resume: one at a time
  ProcessInfo info_;
  producer::TraceFile file_;  // its writer: the preamble and the End record
  std::atomic<uint64_t> next_seq_{1};
  ThreadSlot* slots_ = nullptr;          // kSlots, reserved at Open
  std::atomic<uint32_t> slots_used_{0};  // slots ever claimed: [0, slots_used_)
  ThreadSlot overflow_;                  // for threads beyond kSlots
  OwnerLock overflow_lock_;
  OwnerLock sink_lock_;
  OwnerLock stack_lock_;
  OwnerLock mappings_lock_;
  pthread_key_t slot_key_ = 0;
  bool have_slot_key_ = false;
  uint64_t module_generation_ = 0;
  int64_t exec_end_offset_ = -1;  // trace size before an exec's End record
  std::atomic<uint32_t> own_syscalls_[format::kSyscallKinds] = {};
  // Filled in by a ptrace observer, if one runs (format.h's handshake).
  format::ObservedBlock observed_ = {};
};

extern Trace g_trace;

inline ThreadSlot* Trace::Slot() {
  if (t_slot && t_slot_pid == info_.pid) [[likely]]
    return t_slot;
  return ClaimSlot(CurrentTid());
}

inline uint64_t Trace::HoldSeq() {
  if (!tracing()) return kNoSeq;
  ThreadSlot* slot = Slot();
  if (!slot) return kNoSeq;
  if (slot->shared) overflow_lock_.Lock(CurrentTid());
  slot->pending.store(next_seq_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  slot->holding = true;
  return next_seq_.fetch_add(1, std::memory_order_seq_cst);
}

inline void Trace::ReleaseSeq() {
  ThreadSlot* slot = Slot();
  if (!slot) return;
  slot->holding = false;
  slot->pending.store(kNoSeq, std::memory_order_release);
  if (slot->shared) overflow_lock_.Unlock();
}

template <typename F>
void Trace::Record(F f, uint64_t held) {
  ThreadSlot* slot = Slot();
  if (!slot) return;
  uint32_t tid = CurrentTid();
  bool lock = slot->shared && !overflow_lock_.HeldBy(tid);
  if (lock) overflow_lock_.Lock(tid);
  bool fresh = !slot->holding;
  // Published before the seq is taken (the add orders the two): a chunk
  // started meanwhile by another thread then counts this record as still
  // to come.
  if (fresh)
    slot->pending.store(next_seq_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  uint64_t seq = held != kNoSeq ? held : next_seq_.fetch_add(1, std::memory_order_seq_cst);
  // After the add: End sets the mode, then waits for `pending`.
  if (tracing()) f(slot->writer, tid, seq);
  if (fresh) slot->pending.store(kNoSeq, std::memory_order_release);
  if (lock) overflow_lock_.Unlock();
}

// Resident pages and used extent of [addr, addr + length) of this process,
// before it is unmapped; false if it cannot be told (not mapped).
bool MeasureUsage(uint64_t addr, uint64_t length, UsageEstimate* usage);

}  // namespace pagewaste::shim
