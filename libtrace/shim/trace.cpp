#include "trace.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "clock.h"
#include "module_map.h"
#include "producer/raw_mmap.h"

namespace pagewaste::shim {

constinit Trace g_trace;

namespace {

// initial-exec: a dynamic TLS access could itself call malloc.
thread_local uint32_t t_tid __attribute__((tls_model("initial-exec"))) = 0;
thread_local uint32_t t_tid_pid __attribute__((tls_model("initial-exec"))) = 0;

}  // namespace

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
  if (!file_.stacks().Init()) {
    file_.sink().Close();
    return OpenResult::kNoStackTable;
  }
  CountOwn(format::SyscallKind::kMmap);  // the stack table's two reservations
  CountOwn(format::SyscallKind::kMmap);
  static_assert(producer::StackTable::kInitMmaps == 2);
  return OpenResult::kOpen;
}

void Trace::WritePreamble(uint32_t ppid) {
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
  file_.WriteHeader(h);
  WriteModules(file_);
  // In a forked child, every stack node its parent interned: ids stay valid.
  file_.WriteKnownStacks();
}

void Trace::WriteModules(producer::TraceFile& file) {
  WriteModuleMap(&file.writer(), ++module_generation_, info_.exe_path);
}

void Trace::BeforeFork() {
  if (tracing()) lock_.Lock(CurrentTid());
}

void Trace::AfterForkParent() {
  if (tracing()) lock_.Unlock();
}

bool Trace::AfterForkChild() {
  if (!tracing()) return true;
  uint32_t ppid = info_.pid;
  info_.pid = static_cast<uint32_t>(getpid());
  // The parent's unwritten records are the parent's; the child starts a
  // trace of its own, with the stacks interned so far written again so that
  // ids stay valid.
  file_.LeaveParentsFile();
  for (auto& count : own_syscalls_) count.store(0);  // the child's trace starts now
  bool ok =
      file_.Open(info_.pattern, info_.exe_name, info_.pid, info_.session_id, info_.use_mapping);
  if (ok) {
    observed_ = format::ObservedBlock{};
    MarkForObserver();
    WritePreamble(ppid);
  } else {
    mode_.store(TraceMode::kDisabled);
  }
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
  if (mode_.compare_exchange_strong(expected, TraceMode::kFinished)) {
    file_.RecordLiveMappingsAtExit({NowNs(), tid, 0}, MeasureUsage);
    file_.FinishData();
    if (reason == format::EndReason::kExec)
      exec_end_offset_ = static_cast<int64_t>(file_.sink().Size());
    MarkForObserver();
    SyscallCounts observed, before_start;
    if (observed_.magic == format::kObservedMagic) {
      for (int i = 0; i < format::kSyscallKinds; ++i) {
        observed.count[i] = observed_.counts[i];
        before_start.count[i] = observed_.before_start[i];
      }
    }
    file_.End(reason, status, OwnSyscalls(), observed, before_start);
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

uint32_t Trace::HoldForRelease() {
  if (!tracing()) return 0;
  uint32_t tid = CurrentTid();
  lock_.Lock(tid);
  return tid;
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
