// The tracker sits between the hook wrappers and the record writer: it owns
// the recursion guard, the tracing state, stack capture, page-cost
// accounting and the writer lock. Everything here is allocation-free and
// constant-initialized, because a library initialized before ours (libstdc++
// allocates its emergency exception pool) can call malloc before any of our
// constructors run.
#pragma once

#include <cstddef>
#include <cstdint>

#include "events.h"
#include "format.h"
#include "syscall_dispatch.h"
#include "usage_estimate.h"

namespace pagewaste::shim {

// Marks the calling thread as inside the shim for its lifetime, if the call
// is to be traced. A call is traced when tracing is on and the thread is not
// already inside the shim (the shim's own allocations, dlsym's, libunwind's).
class Scope {
 public:
  Scope();
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;
  bool active() const { return active_; }
  // Not traced because the shim itself made the call.
  bool inside_shim() const { return inside_shim_; }

 private:
  bool active_;
  bool inside_shim_;
};

// Keeps the trace in the order memory changed hands. Held across a call
// that gives memory back (free, realloc, munmap, mremap) until the call's
// record is written, so that another thread which gets the same addresses
// next cannot record them first: a 64-thread program's frees were charged
// to the wrong blocks without it. It is the writer lock (records made while
// it is held do not take it again); take it after capturing the stack, so
// that no unwinding happens under it.
class ReleaseOrder {
 public:
  explicit ReleaseOrder(bool needed = true);
  ~ReleaseOrder();
  ReleaseOrder(const ReleaseOrder&) = delete;
  ReleaseOrder& operator=(const ReleaseOrder&) = delete;

 private:
  uint32_t tid_ = 0;  // 0: not held
};

// True for a memory call made by the shim's own machinery outside the
// recursion guard: libunwind frees its per-thread caches from a thread-exit
// destructor. Such calls are passed through, neither traced nor counted.
bool CalledByShim(const void* return_address);
// Counts memory system calls of the shim's own, for the End record.
void CountShimSyscall(format::SyscallKind kind);
void CountShimSyscalls(const SyscallCounts& counts);

// Nanoseconds since the trace started, on the coarse clock (clock.h).
uint64_t NowNs();

// A captured call stack, innermost frame first, the shim's own frames
// already dropped.
struct Stack {
  static constexpr int kMaxDepth = 64;
  static_assert(kMaxDepth <= format::kMaxStackDepth);
  uintptr_t ips[kMaxDepth];
  int depth = 0;
};
void CaptureStack(Stack* stack);

// What glibc's chunk header says of a heap block: whether malloc served it
// with its own mapping, and that mapping's size. Zero when the allocator is
// not glibc's, whose headers we do not know.
struct ChunkInfo {
  uint64_t mapped_bytes = 0;
  uint64_t usable = 0;  // what malloc_usable_size would say
  bool mmapped = false;
  bool known = false;   // read from glibc's header (else all of the above is 0)
};
ChunkInfo InspectChunk(const void* p);

// Resident pages and used extent of [addr, addr + length) of this process,
// before it is unmapped; false if it cannot be told (not mapped).
bool MeasureUsage(const void* addr, size_t length, UsageEstimate* usage);

// Sampling (pagewaste run --sample). What to do with an allocator call's
// new block: kRecordSampled (picked: each requested byte is picked with
// probability 1 / interval), kRecord (not sampling, or the call entered the
// kernel or failed: such calls are always recorded, for themselves), or
// kSkip. Decided before the stack is captured, which is most of the cost.
enum class SampleDecision { kRecord, kRecordSampled, kSkip };
SampleDecision DecideSample(uint64_t requested, const void* result, const AllocatorCall& call);

// Record an event. prefix.time_ns/tid/stack are filled in here; `stack` may
// be null (no stack recorded). The malloc family's events also get the
// system calls of `call`, counted or estimated; `replaced` is the block a
// realloc gave up.
void RecordAlloc(AllocEvent* e, const Stack* stack, const AllocatorCall& call,
                 const ChunkInfo& replaced = {});
void RecordFree(FreeEvent* e, const Stack* stack, const AllocatorCall* call);
// The common cases, written as the compact records without building an
// event: a malloc whose call made no system call and got a block on shared
// heap pages (glibc's, so its chunk header is read), and a free of such a
// block that made none either.
void RecordPlainMalloc(const Stack& stack, uint64_t address, uint64_t requested,
                       const ChunkInfo& chunk);
void RecordPlainFree(uint64_t address);
void RecordMmap(MmapEvent* e, const Stack* stack);
void RecordMunmap(MunmapEvent* e, const Stack* stack);
void RecordMremap(MremapEvent* e, const Stack* stack);
void RecordBrk(BrkEvent* e, const Stack* stack);
void RecordMemoryCall(MemoryCallEvent* e, const Stack* stack);
void RecordModulesChanged();

// Lifecycle (lifecycle.cpp).
void Finalize(format::EndReason reason, int64_t status);
// Takes back a Finalize(kExec) whose exec failed, and resumes tracing.
void ResumeAfterFailedExec();
// True in a vfork()ed child (or a raw clone) that shares our memory: it must
// not touch the parent's trace.
bool IsForeignProcess();
void SetExitStatus(int status);

}  // namespace pagewaste::shim
