// The tracker: what a hook does for a traced call besides calling the real
// function. One entry per hook (a function called after the real one, or an
// object alive around it when something must be seen or held before), and
// the policy behind them: the recursion guard, which calls are the
// program's, sampling, what a free costs, glibc's realloc semantics, stack
// capture and the system calls an allocator call is charged. Records go to
// the trace (trace.h). Everything here is allocation-free and constant-
// initialized, because a library initialized before ours (libstdc++
// allocates its emergency exception pool) can call malloc before any of our
// constructors run.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

#include "format/format.h"
#include "module_map.h"
#include "syscall_dispatch.h"
#include "trace.h"
#include "format/usage_estimate.h"

namespace pagewaste::shim {

// Marks the calling thread as inside the shim for its lifetime, if the call
// is to be traced. A call is traced when tracing is on and the thread is not
// already inside the shim (the shim's own allocations, dlsym's, libunwind's).
// The first Scope of the process starts the trace (lifecycle.cpp).
class Scope {
 public:
  Scope();
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;
  bool active() const { return active_; }
  // Not traced because the shim itself made the call.
  bool inside_shim() const { return inside_shim_; }
  // Whether a memory system call made here is the program's, to be traced.
  // The shim's own (made inside it, or by libunwind from a thread-exit
  // destructor, seen by the return address) are counted for the End record.
  bool ProgramSyscall(const void* return_address, format::SyscallKind kind) const;

 private:
  bool active_;
  bool inside_shim_;
};

// What the tracker is told of the process once, before tracing begins.
struct TrackerSetup {
  bool glibc_malloc = false;  // glibc's chunk headers can be read
  uint64_t heap_start = 0;    // the kernel's start_brk: where the brk heap begins
  CodeRange own_code;         // the shim: its frames are dropped from stacks
  CodeRange unwinder_code;    // libunwind: its memory calls are the shim's own
};
void SetUpTracker(const TrackerSetup& setup);
// pagewaste run --sample: reserves the table of sampled blocks (one mmap);
// false if it could not, and nothing is sampled.
bool StartSampling(uint64_t interval_bytes);

// fork(): the tracker's own table (the sampled blocks) is held across it,
// after the trace's locks.
void HoldTrackerTables();
void ReleaseTrackerTables();

// An allocator call the shim made for itself: not traced, but its system
// calls are counted for the End record.
void CountShimsOwn(const AllocatorCall& call);

// Keeps the trace in the order memory changed hands. A call that gives
// memory back (free, realloc, munmap, mremap) takes its record's seq before
// the real call, so that another thread which gets the same addresses next
// numbers its record after it: a 64-thread program's frees were charged to
// the wrong blocks without it. Held until the record is written (a chunk
// another thread starts meanwhile counts it as still to come).
class ReleaseOrder {
 public:
  ReleaseOrder() = default;
  ~ReleaseOrder();
  ReleaseOrder(const ReleaseOrder&) = delete;
  ReleaseOrder& operator=(const ReleaseOrder&) = delete;
  void Hold();
  uint64_t seq() const { return seq_; }  // kNoSeq: not held

 private:
  uint64_t seq_ = kNoSeq;
};

// A captured call stack, innermost frame first, the shim's own frames
// already dropped.
struct Stack {
  static constexpr int kMaxDepth = 64;
  static_assert(kMaxDepth <= format::kMaxStackDepth);
  uintptr_t ips[kMaxDepth];
  int depth = 0;
};

// What glibc's chunk header says of a heap block: whether malloc served it
// with its own mapping, and that mapping's size. Zero when the allocator is
// not glibc's, whose headers we do not know.
struct ChunkInfo {
  uint64_t mapped_bytes = 0;
  uint64_t usable = 0;  // what malloc_usable_size would say
  bool mmapped = false;
  bool known = false;  // read from glibc's header (else all of the above is 0)
};

// ---- The malloc family ------------------------------------------------------

// malloc, calloc, posix_memalign and the aligned allocators: the new block
// (null if the call failed) and the call that made it.
void OnAlloc(format::AllocKind kind, void* result, size_t requested, size_t alignment,
             const AllocatorCall& call);

// free(p), around the real call: the block's header is read before the
// free can reuse it, and the release order held.
class FreeCall {
 public:
  explicit FreeCall(void* p);
  void Done(const AllocatorCall& call);

 private:
  void* p_;
  ChunkInfo chunk_;
  ReleaseOrder order_;
};

// realloc and reallocarray, around the real call: the old block's Free and
// the new block's Alloc, under one stack, with glibc's semantics (realloc(p,
// 0) frees p and returns null; a failed realloc keeps p).
class ReallocCall {
 public:
  ReallocCall(format::AllocKind kind, void* p, size_t size);
  void Done(void* result, const AllocatorCall& call);

 private:
  format::AllocKind kind_;
  void* p_;
  size_t size_;
  ChunkInfo old_;
  Stack stack_;
  ReleaseOrder order_;
};

// ---- The program's own memory system calls ------------------------------------
// Each with the call's arguments, its result and its time in the kernel,
// called with errno as the call left it (and leaving it so).

void OnMmap(void* addr, size_t length, int prot, int flags, int fd, off_t offset, void* result,
            uint64_t ns);

// munmap, around the real call: what the mapping was used for can only be
// seen before it goes.
class MunmapCall {
 public:
  MunmapCall(void* addr, size_t length);
  void Done(int rc, uint64_t ns);

 private:
  void* addr_;
  size_t length_;
  bool measured_;
  UsageEstimate usage_;
  Stack stack_;
  ReleaseOrder order_;
};

class MremapCall {
 public:
  MremapCall();
  void Done(void* old_address, size_t old_size, size_t new_size, int flags, void* new_address,
            void* result, uint64_t ns);

 private:
  Stack stack_;
  ReleaseOrder order_;
};

// brk: the break before the call (the one after is read here).
void OnBrk(void* addr, uintptr_t old_break, uint64_t ns);
void OnSbrk(intptr_t increment, void* result, uint64_t ns);
// mprotect (nr SYS_mprotect) and madvise (SYS_madvise).
void OnMemoryCall(long nr, void* addr, size_t length, int argument, int rc, uint64_t ns);

// dlopen, dlclose: the module map changed.
void OnModulesChanged();

}  // namespace pagewaste::shim
