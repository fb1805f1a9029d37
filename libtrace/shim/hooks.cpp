// The extern "C" wrappers and nothing else: each calls the real function and
// hands what it learned to the tracker. Untraced calls (tracing off, or made
// from inside the shim) go straight to the real function.
#include <dlfcn.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstring>

#include "clock.h"
#include "fast_unwind.h"
#include "raw_mmap.h"
#include "real_functions.h"
#include "syscall_dispatch.h"
#include "tracker.h"

#define PW_EXPORT extern "C" __attribute__((visibility("default")))

using namespace pagewaste;
using namespace pagewaste::shim;
using format::AllocKind;
using format::SyscallKind;

namespace {

void* TracedAlloc(AllocKind kind, void* result, size_t requested,
                  size_t alignment, const AllocatorCall& call) {
  SampleDecision sample = DecideSample(requested, result, call);
  if (sample == SampleDecision::kSkip) return result;
  Stack stack;
  CaptureStack(&stack);
  // (Counted with none made: so the break did not move either.)
  if (kind == AllocKind::kMalloc && sample == SampleDecision::kRecord && result &&
      call.exact_and_none()) {
    ChunkInfo chunk = InspectChunk(result);
    if (chunk.known && !chunk.mmapped) {
      RecordPlainMalloc(stack, reinterpret_cast<uintptr_t>(result), requested, chunk);
      return result;
    }
  }
  AllocEvent e;
  if (sample == SampleDecision::kRecordSampled) e.flags = format::kFlagSampled;
  e.kind = kind;
  e.address = reinterpret_cast<uintptr_t>(result);
  e.requested = requested;
  e.alignment = alignment;
  RecordAlloc(&e, &stack, call);
  return result;
}

void TracedFree(format::FreeKind kind, void* p, const ChunkInfo& chunk,
                const Stack* stack, const AllocatorCall* call) {
  FreeEvent e;
  e.kind = kind;
  e.address = reinterpret_cast<uintptr_t>(p);
  e.mapped_bytes = chunk.mapped_bytes;
  if (chunk.mmapped) e.flags |= format::kFlagMmappedChunk;
  RecordFree(&e, stack, call);
}

bool MulOverflows(size_t a, size_t b, size_t* out) {
  return __builtin_mul_overflow(a, b, out);
}

// Each traced call runs the real function inside an AllocatorCall, which
// counts the system calls the allocator makes there.
template <typename Call>
auto Counted(AllocatorCall& counting, Call call) {
  auto result = call();
  counting.Stop();
  return result;
}

// The shim's own allocations (it makes few) are not traced, but what they
// cost in system calls is counted for the End record.
template <typename Call>
auto ShimsOwn(Call call) {
  AllocatorCall counting;
  auto result = Counted(counting, call);
  CountShimSyscalls(counting.counts());
  return result;
}

}  // namespace

PW_EXPORT void* malloc(size_t size) {
  Scope scope;
  if (scope.inside_shim() && real.malloc) return ShimsOwn([&] { return real.malloc(size); });
  if (!scope.active()) return real.malloc ? real.malloc(size) : BootstrapAlloc(size);
  AllocatorCall call;
  return TracedAlloc(AllocKind::kMalloc, Counted(call, [&] { return real.malloc(size); }), size, 0, call);
}

PW_EXPORT void* calloc(size_t n, size_t size) {
  Scope scope;
  if (scope.inside_shim() && real.calloc) return ShimsOwn([&] { return real.calloc(n, size); });
  if (!scope.active()) {
    size_t total;
    if (real.calloc) return real.calloc(n, size);
    return MulOverflows(n, size, &total) ? nullptr : BootstrapAlloc(total);
  }
  size_t total = 0;
  MulOverflows(n, size, &total);
  AllocatorCall call;
  return TracedAlloc(AllocKind::kCalloc, Counted(call, [&] { return real.calloc(n, size); }), total, 0, call);
}

PW_EXPORT void free(void* p) {
  if (!p || IsBootstrapPointer(p)) return;
  Scope scope;
  if (scope.inside_shim()) {
    ShimsOwn([&] {
      real.free(p);
      return 0;
    });
    return;
  }
  if (!scope.active()) return real.free(p);
  ChunkInfo chunk = InspectChunk(p);
  ReleaseOrder order;
  AllocatorCall call;
  real.free(p);
  call.Stop();
  if (!chunk.mmapped && call.exact_and_none()) return RecordPlainFree(reinterpret_cast<uintptr_t>(p));
  // Frees carry a stack only when they cost the kernel something (a mapping
  // returned, a heap trimmed): that is where a page allocator's cost shows,
  // and it keeps the common free cheap.
  bool costly = chunk.mmapped || call.counts().Total() || call.break_moved();
  Stack stack;
  if (costly) CaptureStack(&stack);
  TracedFree(format::FreeKind::kFree, p, chunk, costly ? &stack : nullptr, &call);
}

namespace {

// realloc and reallocarray: the old block's Free and the new block's Alloc,
// under one stack; the call's system calls go with the new block (or with
// the Free, when realloc(p, 0) only freed). call(p, a, b) is the real
// function.
void* Realloc(AllocKind kind, void* p, size_t size,
              void* (*call)(void*, size_t, size_t), size_t a, size_t b) {
  if (p && IsBootstrapPointer(p)) {
    // Memory handed out before the real allocator was known: move it over.
    void* q = malloc(size);
    if (q) memcpy(q, p, BootstrapCopyLimit(p, size));
    return q;
  }
  Scope scope;
  if (scope.inside_shim()) return ShimsOwn([&] { return call(p, a, b); });
  if (!scope.active()) return call(p, a, b);
  ChunkInfo old_chunk = InspectChunk(p);
  Stack stack;
  CaptureStack(&stack);
  ReleaseOrder order(p != nullptr);
  AllocatorCall counted;
  void* result = Counted(counted, [&] { return call(p, a, b); });
  // glibc: realloc(p, 0) frees p and returns NULL; a failed realloc keeps p.
  bool allocates = result || size != 0;
  if (p && (result || size == 0))
    TracedFree(format::FreeKind::kRealloc, p, old_chunk, &stack, allocates ? nullptr : &counted);
  SampleDecision sample = allocates ? DecideSample(size, result, counted) : SampleDecision::kSkip;
  if (sample != SampleDecision::kSkip) {
    AllocEvent e;
    e.kind = kind;
    e.address = reinterpret_cast<uintptr_t>(result);
    e.requested = size;
    if (sample == SampleDecision::kRecordSampled) e.flags = format::kFlagSampled;
    RecordAlloc(&e, &stack, counted, old_chunk);
  }
  return result;
}

}  // namespace

PW_EXPORT void* realloc(void* p, size_t size) {
  return Realloc(
      AllocKind::kRealloc, p, size,
      [](void* q, size_t n, size_t) { return real.realloc(q, n); }, size, 0);
}

PW_EXPORT void* reallocarray(void* p, size_t n, size_t elem) {
  size_t size = 0;
  if (MulOverflows(n, elem, &size)) {
    errno = ENOMEM;
    return nullptr;
  }
  return Realloc(
      AllocKind::kReallocarray, p, size,
      [](void* q, size_t a, size_t b) {
        return real.reallocarray ? real.reallocarray(q, a, b)
                                 : real.realloc(q, a * b);
      },
      n, elem);
}

PW_EXPORT int posix_memalign(void** out, size_t alignment, size_t size) {
  Scope scope;
  if (!scope.active()) return real.posix_memalign(out, alignment, size);
  AllocatorCall call;
  int rc = Counted(call, [&] { return real.posix_memalign(out, alignment, size); });
  TracedAlloc(AllocKind::kPosixMemalign, rc == 0 ? *out : nullptr, size, alignment, call);
  return rc;
}

// The optional aligned allocators: glibc has them all; a C library without
// one fails the call as if it did not exist.
#define PW_ALIGNED_HOOK(name, kind, params, args, size, alignment)  \
  PW_EXPORT void* name params {                                     \
    if (!real.name && real.malloc) {                                \
      errno = ENOSYS;                                               \
      return nullptr;                                               \
    }                                                               \
    Scope scope;                                                    \
    if (!scope.active()) return real.name args;                     \
    AllocatorCall call;                                             \
    return TracedAlloc(AllocKind::kind, Counted(call, [&] { return real.name args; }), size, \
                       alignment, call);                            \
  }

PW_ALIGNED_HOOK(aligned_alloc, kAlignedAlloc, (size_t alignment, size_t size),
                (alignment, size), size, alignment)
PW_ALIGNED_HOOK(memalign, kMemalign, (size_t alignment, size_t size),
                (alignment, size), size, alignment)
PW_ALIGNED_HOOK(valloc, kValloc, (size_t size), (size), size,
                static_cast<size_t>(sysconf(_SC_PAGESIZE)))
PW_ALIGNED_HOOK(pvalloc, kPvalloc, (size_t size), (size), size,
                static_cast<size_t>(sysconf(_SC_PAGESIZE)))
#undef PW_ALIGNED_HOOK

// ---- The program's own memory system calls --------------------------------

namespace {

// Runs the real call and measures it: a direct call is one system call, and
// its time is the time in the kernel.
template <typename Call>
auto Timed(uint64_t* ns, Call call) {
  uint64_t start = MonotonicNs();
  auto result = call();
  *ns = MonotonicNs() - start;
  return result;
}

void* TracedMmap(void* result, uint64_t ns, size_t length, int prot, int flags, int fd,
                 off_t offset) {
  Stack stack;
  CaptureStack(&stack);
  MmapEvent e;
  e.address = reinterpret_cast<uintptr_t>(result);
  e.length = length;
  e.prot = static_cast<uint32_t>(prot);
  e.map_flags = static_cast<uint32_t>(flags);
  e.fd = fd;
  e.offset = static_cast<uint64_t>(offset);
  if (result == MAP_FAILED) e.flags |= format::kFlagFailed;
  if (!(flags & MAP_ANONYMOUS)) e.flags |= format::kFlagFileBacked;
  e.syscalls.Add(SyscallKind::kMmap);
  e.syscalls.ns = ns;
  RecordMmap(&e, &stack);
  return result;
}

// mmap before the real one is known: as the C library's would, with errno.
void* EarlyMmap(void* addr, size_t length, int prot, int flags, int fd, off_t offset) {
  int error = 0;
  void* p = RawMmap(addr, length, prot, flags, fd, offset, &error);
  if (!p) errno = error;
  return p ? p : MAP_FAILED;
}


// Whether a memory system call is the program's, to be traced. The shim's
// own (made inside it, or by libunwind from a thread-exit destructor) are
// only counted, for the End record.
bool ProgramCall(const Scope& scope, const void* return_address, SyscallKind kind) {
  bool shims = scope.inside_shim() || CalledByShim(return_address);
  // Made inside an allocator call that is being counted (an allocator such
  // as jemalloc calls mmap through the PLT), the system call is trapped and
  // counted there already: on the allocation's event, or as the shim's own
  // for the shim's allocations.
  if (shims && !CountingOnThisThread()) CountShimSyscall(kind);
  return scope.active() && !shims;
}

}  // namespace

PW_EXPORT void* mmap(void* addr, size_t length, int prot, int flags, int fd,
                     off_t offset) {
  Scope scope;
  if (!ProgramCall(scope, __builtin_return_address(0), SyscallKind::kMmap))
    return real.mmap ? real.mmap(addr, length, prot, flags, fd, offset)
                     : EarlyMmap(addr, length, prot, flags, fd, offset);
  uint64_t ns;
  void* result = Timed(&ns, [&] { return real.mmap(addr, length, prot, flags, fd, offset); });
  return TracedMmap(result, ns, length, prot, flags, fd, offset);
}

PW_EXPORT void* mmap64(void* addr, size_t length, int prot, int flags, int fd,
                       off64_t offset) {
  auto call = [&] {
    return real.mmap64 ? real.mmap64(addr, length, prot, flags, fd, offset)
                       : EarlyMmap(addr, length, prot, flags, fd, offset);
  };
  Scope scope;
  if (!ProgramCall(scope, __builtin_return_address(0), SyscallKind::kMmap)) return call();
  uint64_t ns;
  void* result = Timed(&ns, call);
  return TracedMmap(result, ns, length, prot, flags, fd, offset);
}

PW_EXPORT int munmap(void* addr, size_t length) {
  Scope scope;
  if (!ProgramCall(scope, __builtin_return_address(0), SyscallKind::kMunmap))
    return real.munmap ? real.munmap(addr, length)
                       : RawMunmap(addr, length);
  // What the mapping was used for can only be seen before it goes.
  UsageEstimate usage;
  bool measured = MeasureUsage(addr, length, &usage);
  Stack stack;
  CaptureStack(&stack);
  ReleaseOrder order;
  uint64_t ns;
  int rc = Timed(&ns, [&] { return real.munmap(addr, length); });
  MunmapEvent e;
  e.address = reinterpret_cast<uintptr_t>(addr);
  e.length = length;
  if (rc != 0) e.flags |= format::kFlagFailed;
  if (measured && rc == 0)
    AttachUsage(usage, &e);
  e.syscalls.Add(SyscallKind::kMunmap);
  e.syscalls.ns = ns;
  RecordMunmap(&e, &stack);
  return rc;
}

PW_EXPORT void* mremap(void* old_address, size_t old_size, size_t new_size,
                       int flags, ...) {
  void* new_address = nullptr;
  if (flags & MREMAP_FIXED) {
    va_list ap;
    va_start(ap, flags);
    new_address = va_arg(ap, void*);
    va_end(ap);
  }
  Scope scope;
  if (!ProgramCall(scope, __builtin_return_address(0), SyscallKind::kMremap))
    return real.mremap(old_address, old_size, new_size, flags, new_address);
  Stack stack;
  CaptureStack(&stack);
  ReleaseOrder order;
  uint64_t ns;
  void* result = Timed(&ns, [&] {
    return real.mremap(old_address, old_size, new_size, flags, new_address);
  });
  MremapEvent e;
  e.old_address = reinterpret_cast<uintptr_t>(old_address);
  e.old_length = old_size;
  e.new_length = new_size;
  e.mremap_flags = static_cast<uint32_t>(flags);
  e.new_address = reinterpret_cast<uintptr_t>(result);
  if (result == MAP_FAILED) e.flags |= format::kFlagFailed;
  e.syscalls.Add(SyscallKind::kMremap);
  e.syscalls.ns = ns;
  RecordMremap(&e, &stack);
  return result;
}

PW_EXPORT int brk(void* addr) {
  if (!real.brk) {
    errno = ENOSYS;
    return -1;
  }
  Scope scope;
  if (!scope.active()) return real.brk(addr);
  uintptr_t before = CurrentBreak();
  uint64_t ns;
  int rc = Timed(&ns, [&] { return real.brk(addr); });
  Stack stack;
  CaptureStack(&stack);
  BrkEvent e;
  e.kind = format::BrkKind::kBrk;
  e.old_break = before;
  e.new_break = CurrentBreak();
  e.argument = static_cast<int64_t>(reinterpret_cast<uintptr_t>(addr));
  if (rc != 0) e.flags |= format::kFlagFailed;
  e.syscalls.Add(SyscallKind::kBrk);
  e.syscalls.ns = ns;
  RecordBrk(&e, &stack);
  return rc;
}

PW_EXPORT void* sbrk(intptr_t increment) {
  if (!real.sbrk) {
    errno = ENOSYS;
    return reinterpret_cast<void*>(-1);
  }
  Scope scope;
  if (!scope.active() || increment == 0) return real.sbrk(increment);
  uint64_t ns;
  void* result = Timed(&ns, [&] { return real.sbrk(increment); });
  Stack stack;
  CaptureStack(&stack);
  BrkEvent e;
  e.kind = format::BrkKind::kSbrk;
  e.old_break = reinterpret_cast<uintptr_t>(result);
  e.new_break = CurrentBreak();
  e.argument = increment;
  if (result == reinterpret_cast<void*>(-1)) e.flags |= format::kFlagFailed;
  e.syscalls.Add(SyscallKind::kBrk);
  e.syscalls.ns = ns;
  RecordBrk(&e, &stack);
  return result;
}

namespace {

// mprotect and madvise: the range, and the protection or advice.
int TracedMemoryCall(const void* return_address, SyscallKind kind,
                     int (*call)(void*, size_t, int), long nr, void* addr, size_t length,
                     int argument) {
  auto run = [&] {
    if (call) return call(addr, length, argument);
    long rc = syscall(nr, addr, length, argument);
    return static_cast<int>(rc);
  };
  Scope scope;
  if (!ProgramCall(scope, return_address, kind)) return run();
  uint64_t ns;
  int rc = Timed(&ns, run);
  Stack stack;
  CaptureStack(&stack);
  MemoryCallEvent e;
  e.kind = kind;
  e.address = reinterpret_cast<uintptr_t>(addr);
  e.length = length;
  e.argument = static_cast<uint64_t>(argument);
  if (rc != 0) e.flags |= format::kFlagFailed;
  e.syscalls.Add(kind);
  e.syscalls.ns = ns;
  RecordMemoryCall(&e, &stack);
  return rc;
}

}  // namespace

PW_EXPORT int mprotect(void* addr, size_t length, int prot) {
  return TracedMemoryCall(__builtin_return_address(0), SyscallKind::kMprotect, real.mprotect,
                          SYS_mprotect, addr, length, prot);
}

PW_EXPORT int madvise(void* addr, size_t length, int advice) {
  return TracedMemoryCall(__builtin_return_address(0), SyscallKind::kMadvise, real.madvise,
                          SYS_madvise, addr, length, advice);
}

// ---- Module map changes ----------------------------------------------------

PW_EXPORT void* dlopen(const char* file, int mode) {
  // The real call runs outside any scope: the constructors of the library
  // it loads are the program's code, and their allocations are traced.
  void* handle = real.dlopen(file, mode);
  Scope scope;
  if (scope.active() && handle) RecordModulesChanged();
  return handle;
}

PW_EXPORT int dlclose(void* handle) {
  int rc = real.dlclose(handle);
  Scope scope;
  if (rc == 0) ForgetUnwindRules();  // its code may be gone
  if (scope.active() && rc == 0) RecordModulesChanged();
  return rc;
}

// ---- Process lifecycle -----------------------------------------------------
// The C library's exec* functions call execve internally, past our wrapper,
// so each entry point is wrapped; the variadic execl* ones are rebuilt on
// execv*. The trace is closed first; if exec fails, tracing resumes.

extern "C" char** environ;

namespace {

template <typename Exec>
int TracedExec(Exec exec) {
  DisableSyscallDispatchForExec();
  if (IsForeignProcess()) return exec();  // a vfork child: not our trace
  Finalize(format::EndReason::kExec, format::kUnknownStatus);
  int rc = exec();
  int saved = errno;
  ResumeAfterFailedExec();
  errno = saved;
  return rc;
}

}  // namespace

PW_EXPORT int execve(const char* path, char* const argv[], char* const envp[]) {
  return TracedExec([&] { return real.execve(path, argv, envp); });
}

PW_EXPORT int execv(const char* path, char* const argv[]) {
  return execve(path, argv, environ);
}

PW_EXPORT int execvpe(const char* file, char* const argv[], char* const envp[]) {
  return TracedExec([&] { return real.execvpe(file, argv, envp); });
}

PW_EXPORT int execvp(const char* file, char* const argv[]) {
  return execvpe(file, argv, environ);
}

PW_EXPORT int fexecve(int fd, char* const argv[], char* const envp[]) {
  return TracedExec([&] { return real.fexecve(fd, argv, envp); });
}

namespace {

// Collects execl-style arguments (arg0, ..., NULL[, envp]) into argv.
constexpr int kMaxExeclArgs = 4096;

}  // namespace

#define PW_COLLECT_ARGS(first, ap, argv)                       \
  const char* argv[kMaxExeclArgs + 1];                         \
  int argc_ = 0;                                               \
  argv[argc_++] = first;                                       \
  while (argv[argc_ - 1] && argc_ < kMaxExeclArgs)             \
    argv[argc_++] = va_arg(ap, const char*);                   \
  argv[argc_] = nullptr

PW_EXPORT int execl(const char* path, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  PW_COLLECT_ARGS(arg, ap, argv);
  va_end(ap);
  return execv(path, const_cast<char* const*>(argv));
}

PW_EXPORT int execlp(const char* file, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  PW_COLLECT_ARGS(arg, ap, argv);
  va_end(ap);
  return execvp(file, const_cast<char* const*>(argv));
}

PW_EXPORT int execle(const char* path, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  PW_COLLECT_ARGS(arg, ap, argv);
  char* const* envp = va_arg(ap, char* const*);
  va_end(ap);
  return execve(path, const_cast<char* const*>(argv), envp);
}
#undef PW_COLLECT_ARGS

// ---- SIGSYS ------------------------------------------------------------------
// While system calls are counted with Syscall User Dispatch, the SIGSYS
// handler is ours: the program's is remembered and called for SIGSYS that
// are not ours, and no handler may block SIGSYS (a blocked SIGSYS forced by
// dispatch would end the process).

PW_EXPORT int sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  if (sig == SIGSYS && SyscallDispatchActive()) return ProgramSigsysAction(act, old);
  if (!act || !SyscallDispatchActive()) return real.sigaction(sig, act, old);
  struct sigaction copy = *act;
  KeepSigsysDeliverable(&copy);
  return real.sigaction(sig, &copy, old);
}

PW_EXPORT sighandler_t signal(int sig, sighandler_t handler) {
  if (sig != SIGSYS || !SyscallDispatchActive()) return real.signal(sig, handler);
  struct sigaction act, old;
  memset(&act, 0, sizeof act);
  act.sa_handler = handler;
  act.sa_flags = SA_RESTART;  // the C library's signal() has BSD semantics
  ProgramSigsysAction(&act, &old);
  return old.sa_handler;
}

// The program's signal masks keep SIGSYS unblocked too, so that an
// allocator call need not ask the kernel whether SIGSYS is deliverable: the
// thread's answer is kept until its mask changes (syscall_dispatch.h).
namespace {

int SetMask(int (*fn)(int, const sigset_t*, sigset_t*), int how, const sigset_t* set,
            sigset_t* old) {
  sigset_t copy;
  if (SyscallDispatchActive() && set && how != SIG_UNBLOCK) {
    copy = *set;
    sigdelset(&copy, SIGSYS);
    set = &copy;
  }
  int rc = fn(how, set, old);
  SignalMaskChanged();
  return rc;
}

int RawSigprocmask(int how, const sigset_t* set, sigset_t* old) {
  long rc = syscall(SYS_rt_sigprocmask, how, set, old, 8);
  return rc == 0 ? 0 : -1;
}

}  // namespace

PW_EXPORT int sigprocmask(int how, const sigset_t* set, sigset_t* old) {
  return SetMask(real.sigprocmask ? real.sigprocmask : RawSigprocmask, how, set, old);
}

PW_EXPORT int pthread_sigmask(int how, const sigset_t* set, sigset_t* old) {
  if (!real.pthread_sigmask) {
    int rc = SetMask(RawSigprocmask, how, set, old);
    return rc == 0 ? 0 : errno;
  }
  return SetMask(real.pthread_sigmask, how, set, old);
}

// A handler that runs while sigsuspend waits runs with its mask.
PW_EXPORT int sigsuspend(const sigset_t* mask) {
  sigset_t copy;
  if (SyscallDispatchActive()) {
    copy = *mask;
    sigdelset(&copy, SIGSYS);
    mask = &copy;
  }
  if (real.sigsuspend) return real.sigsuspend(mask);
  return static_cast<int>(syscall(SYS_rt_sigsuspend, mask, 8));
}

PW_EXPORT void exit(int status) {
  SetExitStatus(status);
  real.exit(status);
  __builtin_unreachable();
}

PW_EXPORT void _exit(int status) {
  Finalize(format::EndReason::kUnderscoreExit, status);
  real._exit(status);
  __builtin_unreachable();
}

PW_EXPORT void _Exit(int status) {
  Finalize(format::EndReason::kUnderscoreExit, status);
  if (real._Exit) real._Exit(status);
  real._exit(status);
  __builtin_unreachable();
}

namespace {

int (*g_main)(int, char**, char**) = nullptr;

// Stands in for main so that a return from main has a known exit status.
int MainWrapper(int argc, char** argv, char** envp) {
  int status = g_main(argc, argv, envp);
  SetExitStatus(status);
  return status;
}

}  // namespace

PW_EXPORT int __libc_start_main(int (*main)(int, char**, char**), int argc,
                                char** argv, void (*init)(void),
                                void (*fini)(void), void (*rtld_fini)(void),
                                void* stack_end) {
  if (!real.__libc_start_main) {
    Scope scope;  // resolves the real functions
  }
  if (!real.__libc_start_main) {
    using StartMain = decltype(real.__libc_start_main);
    real.__libc_start_main =
        reinterpret_cast<StartMain>(dlsym(RTLD_NEXT, "__libc_start_main"));
  }
  g_main = main;
  return real.__libc_start_main(MainWrapper, argc, argv, init, fini, rtld_fini,
                                stack_end);
}
