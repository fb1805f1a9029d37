// The shim's one trace, g_trace: its file, its threads' writers, and its life
// from open to end (trace.h).
#include "trace.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <new>

#include "format/clock.h"
#include "format/little_endian.h"
#include "module_map.h"
#include "producer/raw_mmap.h"

namespace pagewaste::shim {

constinit Trace g_trace;
thread_local ThreadSlot* t_slot __attribute__((tls_model("initial-exec"))) = nullptr;
thread_local uint32_t t_slot_pid __attribute__((tls_model("initial-exec"))) = 0;

namespace {

// initial-exec: a dynamic TLS access could itself call malloc.
thread_local uint32_t t_tid __attribute__((tls_model("initial-exec"))) = 0;
thread_local uint32_t t_tid_pid __attribute__((tls_model("initial-exec"))) = 0;

// Set once a slot is constructed (its memory is zero until then).
std::atomic<uint8_t> g_slot_ready[Trace::kSlots] = {};

// Where a chunk goes whose memory could not be had (no mapping, no buffer):
// written over by whoever lands there, never to the file, counted as lost.
uint8_t g_lost_chunk[ThreadSlot::kFirstChunkBytes];

}  // namespace

// ---- Thread slots ----------------------------------------------------------------

uint8_t* ThreadSlot::NextChunk(size_t capacity) {
  Trace& t = g_trace;
  uint32_t tid = t.CurrentTid();
  bool locked = !t.sink_lock_.HeldBy(tid);
  if (locked) t.sink_lock_.Lock(tid);
  low_seq_ = t.LowSeq();
  capacity = next_size_;
  writer.SetChunkCapacity(capacity);
  if (next_size_ < kChunkBytes) next_size_ *= 2;
  mapped_ = t.file_.sink().MapChunk(capacity);
  mapped_size_ = capacity;
  if (mapped_) {
    // Its headers before the lock goes (the writer writes the same again):
    // a chunk started after this one never follows an all-zero header,
    // which a reader takes for the end of the data.
    memset(mapped_, 0, format::kChunkPrefixSize + format::kThreadChunkHeader);
    PutLE(mapped_, capacity - format::kChunkPrefixSize, 4);
    PutLE(mapped_ + 4, format::kChunkThread, 4);
    PutLE(mapped_ + format::kChunkPrefixSize + 16, low_seq_, 8);
  } else {
    // Inside a record: its pending seq bounds every event the chunk will
    // hold, until the chunk is appended.
    buffered_first.store(pending.load(std::memory_order_relaxed));
  }
  if (locked) t.sink_lock_.Unlock();
  if (mapped_) return mapped_;
  if (!buffer_) buffer_ = static_cast<uint8_t*>(producer::RawReserve(kChunkBytes));
  if (buffer_) return buffer_;
  writer.SetChunkCapacity(sizeof g_lost_chunk);
  return g_lost_chunk;
}

bool ThreadSlot::FinishChunk(const uint8_t* data, size_t size) {
  Trace& t = g_trace;
  uint32_t tid = t.CurrentTid();
  bool locked = !t.sink_lock_.HeldBy(tid);
  if (locked) t.sink_lock_.Lock(tid);
  bool ok = true;
  if (mapped_) {
    t.file_.sink().UnmapChunk(mapped_, size);  // already in the file
  } else if (data != buffer_) {
    ok = false;  // the lost chunk
  } else {
    // Appended now: its low_seq is that of now, and only its records and
    // gap area go.
    PutLE(buffer_ + format::kChunkPrefixSize + 16, t.LowSeq(), 8);
    ok = t.file_.sink().WriteRaw(buffer_, CompactThreadChunk(buffer_, size));
  }
  buffered_first.store(kNoSeq);
  if (locked) t.sink_lock_.Unlock();
  mapped_ = nullptr;
  return ok;
}

void ThreadSlot::Abandon() {
  // (The forking thread holds the sink's lock; the child's file starts
  // its counts afresh.)
  if (mapped_) g_trace.file_.sink().UnmapChunk(mapped_, mapped_size_);
  mapped_ = nullptr;
  buffered_first.store(kNoSeq);
  writer.Reset();
  holding = false;
  pending.store(kNoSeq);
  if (!shared) owner.store(0);
}

ThreadSlot* Trace::ClaimSlot(uint32_t tid) {
  if (!slots_) return nullptr;
  ThreadSlot* slot = nullptr;
  // One a thread that has exited left, else a new one.
  uint32_t used = slots_used_.load(std::memory_order_acquire);
  for (uint32_t i = 0; i < used && !slot; ++i) {
    uint32_t free = 0;
    if (g_slot_ready[i].load(std::memory_order_acquire) &&
        slots_[i].owner.load(std::memory_order_relaxed) == 0 &&
        slots_[i].owner.compare_exchange_strong(free, tid, std::memory_order_acquire))
      slot = &slots_[i];
  }
  if (!slot) {
    uint32_t i = slots_used_.fetch_add(1);
    if (i < kSlots) {
      slot = new (&slots_[i]) ThreadSlot;
      slot->writer.UseThreadChunks();
      slot->owner.store(tid, std::memory_order_relaxed);
      g_slot_ready[i].store(1, std::memory_order_release);
    } else {
      slots_used_.store(kSlots);
      slot = &overflow_;  // shared, under overflow_lock_
    }
  }
  if (!slot->shared && have_slot_key_) pthread_setspecific(slot_key_, slot);
  t_slot = slot;
  t_slot_pid = info_.pid;
  return slot;
}

void Trace::ReleaseSlot(void* p) {
  auto* slot = static_cast<ThreadSlot*>(p);
  Trace& t = g_trace;
  // Busy, as in a record, so that an End meanwhile waits for the flush
  // (and one that came first is seen here: the exchange orders the two).
  slot->pending.exchange(0, std::memory_order_seq_cst);
  if (t.tracing()) slot->writer.Flush();
  slot->pending.store(kNoSeq, std::memory_order_release);
  t_slot = nullptr;
  slot->owner.store(0, std::memory_order_release);
}

uint64_t Trace::LowSeq() const {
  uint64_t low = next_seq_.load(std::memory_order_seq_cst);
  uint32_t used = slots_used_.load(std::memory_order_acquire);
  if (used > kSlots) used = kSlots;
  auto lower = [&](const ThreadSlot& slot) {
    uint64_t pending = slot.pending.load(std::memory_order_seq_cst);
    uint64_t buffered = slot.buffered_first.load(std::memory_order_relaxed);
    if (pending < low) low = pending;
    if (buffered < low) low = buffered;
  };
  for (uint32_t i = 0; i < used; ++i)
    if (g_slot_ready[i].load(std::memory_order_acquire)) lower(slots_[i]);
  lower(overflow_);
  return low;
}

void Trace::FinishSlots(uint32_t tid, int attempts) {
  auto finish = [&](ThreadSlot& slot) {
    // The calling thread's own slot may be in the middle of a record (a
    // fatal signal inside the shim): what it committed is whole.
    bool own = slot.owner.load() == tid || &slot == t_slot;
    for (int i = 0; !own && slot.pending.load(std::memory_order_seq_cst) != kNoSeq; ++i) {
      if (i == attempts) return;  // stuck mid-record: its chunk stays as it is
      sched_yield();
    }
    slot.writer.Flush();
  };
  uint32_t used = slots_used_.load();
  if (used > kSlots) used = kSlots;
  for (uint32_t i = 0; i < used; ++i)
    if (g_slot_ready[i].load(std::memory_order_acquire)) finish(slots_[i]);
  finish(overflow_);
}

// ---- The trace's life ---------------------------------------------------------------

bool Trace::ClaimStart() {
  TraceMode expected = TraceMode::kUninitialized;
  return mode_.compare_exchange_strong(expected, TraceMode::kInitializing);
}

Trace::OpenResult Trace::Open() {
  // The trace file first: the shim's own system calls are counted from its
  // creation on (and a strace of the process can find that point).
  if (!file_.Open(info_.pattern, info_.exe_name, info_.pid, info_.session_id, info_.use_mapping))
    return OpenResult::kNoFile;
  MarkForObserver();
  slots_ = static_cast<ThreadSlot*>(producer::RawReserve(sizeof(ThreadSlot) * kSlots));
  if (!file_.stacks().Init() || !slots_) {
    file_.sink().Close();
    return OpenResult::kNoStackTable;
  }
  // The stack table's two reservations and the slots'.
  static_assert(producer::StackTable::kInitMmaps == 2);
  for (int i = 0; i < 3; ++i) CountOwn(format::SyscallKind::kMmap);
  new (&overflow_) ThreadSlot;
  overflow_.writer.UseThreadChunks();
  overflow_.shared = true;
  have_slot_key_ = pthread_key_create(&slot_key_, ReleaseSlot) == 0;
  return OpenResult::kOpen;
}

bool Trace::Begin(uint32_t ppid) { return WritePreamble(ppid); }

bool Trace::WritePreamble(uint32_t ppid) {
  HeaderInfo h;
  h.process.page_size = info_.page_size;
  h.process.pid = info_.pid;
  h.process.ppid = ppid;
  h.process.session_id = info_.session_id;
  h.process.start_monotonic_ns = info_.start_monotonic_ns;
  h.process.backend = format::Backend::kPreload;
  h.process.time_resolution_ns = info_.time_resolution_ns;
  h.process.sample_interval_bytes = info_.sample_interval;
  h.exe = info_.exe_path;
  h.argc = info_.argc;
  h.argv = info_.argv;
  if (!file_.WriteHeader(h)) return false;
  WriteModuleMap(&file_.writer(), ++module_generation_, 0, info_.exe_path);
  // In a forked child, every stack node its parent interned: ids stay valid.
  file_.WriteKnownStacks();
  // Before the threads' chunks, which come after it in the file.
  file_.writer().Flush();
  return true;
}

void Trace::BeforeFork() {
  if (!tracing()) return;
  uint32_t tid = CurrentTid();
  lock_.Lock(tid);
  overflow_lock_.Lock(tid);
  stack_lock_.Lock(tid);
  mappings_lock_.Lock(tid);
  sink_lock_.Lock(tid);
}

void Trace::AfterForkParent() {
  if (!tracing()) return;
  sink_lock_.Unlock();
  mappings_lock_.Unlock();
  stack_lock_.Unlock();
  overflow_lock_.Unlock();
  lock_.Unlock();
}

bool Trace::AfterForkChild() {
  if (!tracing()) return true;
  uint32_t ppid = info_.pid;
  info_.pid = static_cast<uint32_t>(getpid());
  info_.started_ns = MonotonicNs();
  // The parent's unwritten records are the parent's, its threads' chunks
  // too; the child starts a trace of its own, with the stacks interned so
  // far written again so that ids stay valid.
  uint32_t used = slots_used_.load();
  if (used > kSlots) used = kSlots;
  for (uint32_t i = 0; i < used; ++i)
    if (g_slot_ready[i].load()) slots_[i].Abandon();
  overflow_.Abandon();
  file_.LeaveParentsFile();
  for (auto& count : own_syscalls_) count.store(0);  // the child's trace starts now
  bool ok =
      file_.Open(info_.pattern, info_.exe_name, info_.pid, info_.session_id, info_.use_mapping);
  if (ok) {
    observed_ = format::ObservedBlock{};
    MarkForObserver();
    ok = WritePreamble(ppid);
  }
  if (!ok) {
    mode_.store(TraceMode::kDisabled);
  }
  sink_lock_.Unlock();
  mappings_lock_.Unlock();
  stack_lock_.Unlock();
  overflow_lock_.Unlock();
  lock_.Unlock();
  return ok;
}

void Trace::End(format::EndReason reason, int64_t status) {
  uint32_t tid = CurrentTid();
  bool from_signal = reason == format::EndReason::kSignal;
  bool locked = false;
  if (from_signal && lock_.HeldBy(tid)) {
    // Interrupted inside the shim: every committed record is whole.
  } else if (from_signal) {
    locked = lock_.TryLockFor(tid, 100000);
    if (!locked) return;  // another thread is stuck mid-write; keep what is on disk
  } else {
    lock_.Lock(tid);
    locked = true;
  }
  TraceMode expected = TraceMode::kTracing;
  if (mode_.compare_exchange_strong(expected, TraceMode::kFinished, std::memory_order_seq_cst)) {
    // Every thread's chunk, once the thread is out of its record: none
    // starts another now that the mode has changed.
    FinishSlots(tid, from_signal ? 100000 : 10000000);
    bool sink_locked = !sink_lock_.HeldBy(tid);
    if (sink_locked && !sink_lock_.TryLockFor(tid, from_signal ? 100000 : 10000000))
      sink_locked = false;
    RecordWriter& writer = file_.writer();
    file_.RecordLiveMappingsAtExit({NowNs(), tid, 0}, MeasureUsage);
    file_.FinishData();
    if (reason == format::EndReason::kExec)
      exec_end_offset_ = static_cast<int64_t>(file_.sink().Size());
    MarkForObserver();
    SyscallCounts observed, before_start;
    ObservedCounts(observed_, &observed, &before_start);
    // The End record counts what every writer wrote (and is taken back if
    // an exec fails: the counts are the preamble writer's again).
    RecordWriter::Counts own = writer.Mark();
    uint32_t used = slots_used_.load();
    if (used > kSlots) used = kSlots;
    for (uint32_t i = 0; i < used; ++i)
      if (g_slot_ready[i].load()) writer.AddCounts(slots_[i].writer);
    writer.AddCounts(overflow_.writer);
    writer.SetLifetime(info_.started_ns, MonotonicNs());
    file_.End(reason, status, OwnSyscalls(), observed, before_start);
    writer.Restore(own);
    if (sink_locked) sink_lock_.Unlock();
  }
  if (locked) lock_.Unlock();
}

void Trace::ResumeAfterFailedExec() {
  lock_.Lock(CurrentTid());
  if (mode_.load() == TraceMode::kFinished && exec_end_offset_ >= 0) {
    file_.sink().TruncateTo(static_cast<uint64_t>(exec_end_offset_));
    exec_end_offset_ = -1;
    mode_.store(TraceMode::kTracing);
  }
  lock_.Unlock();
}

// ---- Shared tables ----------------------------------------------------------------

uint64_t Trace::InternStack(RecordWriter* writer, const uintptr_t* ips, int depth, uint64_t parent,
                            uint64_t* ids) {
  uint32_t tid = CurrentTid();
  stack_lock_.Lock(tid);
  uint64_t id = file_.stacks().Intern(ips, depth, writer, parent, ids);
  stack_lock_.Unlock();
  return id;
}

void Trace::RecordMemorySyscall(RecordWriter* writer, const EventPrefix& prefix,
                                const producer::MemorySyscall& call) {
  mappings_lock_.Lock(CurrentTid());
  producer::RecordMemorySyscall(writer, &file_.live_mappings(), prefix, call);
  mappings_lock_.Unlock();
}

void Trace::WriteModules(RecordWriter* writer, uint64_t seq) {
  stack_lock_.Lock(CurrentTid());
  WriteModuleMap(writer, ++module_generation_, seq, info_.exe_path);
  stack_lock_.Unlock();
}

void Trace::CountOwn(const SyscallCounts& counts) {
  for (int i = 0; i < format::kSyscallKinds; ++i)
    if (counts.count[i]) own_syscalls_[i].fetch_add(counts.count[i], std::memory_order_relaxed);
}

SyscallCounts Trace::OwnSyscalls() const {
  SyscallCounts total = file_.OwnSyscalls();
  for (int i = 0; i < format::kSyscallKinds; ++i) total.count[i] += own_syscalls_[i].load();
  return total;
}

void Trace::MarkForObserver() {
  // munmap of length 0 fails with EINVAL and changes nothing; an observer
  // recognizes it by the length and the address. The marks bound the span
  // that both the observer's counts and the shim's own cover, and belong to
  // neither.
  producer::RawMunmap(&observed_, 0);
}

uint32_t Trace::CurrentTid() {
  // Cached per thread; the pid check catches a forked child, whose one
  // thread inherits the forking thread's cache.
  uint32_t pid = info_.pid;
  if (t_tid == 0 || t_tid_pid != pid) {
    t_tid = static_cast<uint32_t>(syscall(SYS_gettid));
    t_tid_pid = pid;
  }
  return t_tid;
}

uint64_t Trace::NowNs() const {
  uint64_t now = CoarseMonotonicNs();
  return now > info_.start_monotonic_ns ? now - info_.start_monotonic_ns : 0;
}

bool MeasureUsage(uint64_t start, uint64_t length, UsageEstimate* usage) {
  uint64_t page = g_trace.info().page_size;
  if (start % page || length == 0) return false;
  bool ok = true;
  *usage = EstimateUsage(static_cast<pid_t>(g_trace.info().pid), start, length, page,
                         [&](uint64_t first, uint64_t count, unsigned char* out) {
                           ok = mincore(reinterpret_cast<void*>(start + first * page), count * page,
                                        out) == 0;
                           return ok;
                         });
  return ok;
}

}  // namespace pagewaste::shim
