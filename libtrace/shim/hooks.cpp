// The extern "C" wrappers and nothing else: each calls the real function,
// and for a traced call tells the tracker (tracker.h) what it saw, through
// the tracker's entry for that hook. Untraced calls (tracing off, or made
// from inside the shim) go straight to the real function.
#include <dlfcn.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstring>

#include "format/clock.h"
#include "fast_unwind.h"
#include "lifecycle.h"
#include "producer/raw_mmap.h"
#include "real_functions.h"
#include "syscall_dispatch.h"
#include "format/syscall_kind.h"
#include "tracker.h"

#define PW_EXPORT extern "C" __attribute__((visibility("default")))

using namespace pagewaste;
using namespace pagewaste::shim;
using format::AllocKind;
using format::SyscallKind;

namespace {

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
  CountShimsOwn(counting);
  return result;
}

}  // namespace

PW_EXPORT void* malloc(size_t size) {
  Scope scope;
  if (scope.inside_shim() && real.malloc) return ShimsOwn([&] { return real.malloc(size); });
  if (!scope.active()) return real.malloc ? real.malloc(size) : BootstrapAlloc(size);
  AllocatorCall call;
  void* p = Counted(call, [&] { return real.malloc(size); });
  OnAlloc(AllocKind::kMalloc, p, size, 0, call);
  return p;
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
  void* p = Counted(call, [&] { return real.calloc(n, size); });
  OnAlloc(AllocKind::kCalloc, p, total, 0, call);
  return p;
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
  FreeCall traced(p);
  AllocatorCall call;
  real.free(p);
  call.Stop();
  traced.Done(call);
}

namespace {

// realloc and reallocarray; call(p, a, b) is the real function.
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
  ReallocCall traced(kind, p, size);
  AllocatorCall counted;
  void* result = Counted(counted, [&] { return call(p, a, b); });
  traced.Done(result, counted);
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
  OnAlloc(AllocKind::kPosixMemalign, rc == 0 ? *out : nullptr, size, alignment, call);
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
    void* p = Counted(call, [&] { return real.name args; });        \
    OnAlloc(AllocKind::kind, p, size, alignment, call);             \
    return p;                                                       \
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

// mmap before the real one is known: as the C library's would, with errno.
void* EarlyMmap(void* addr, size_t length, int prot, int flags, int fd, off_t offset) {
  int error = 0;
  void* p = producer::RawMmap(addr, length, prot, flags, fd, offset, &error);
  if (!p) errno = error;
  return p ? p : MAP_FAILED;
}

}  // namespace

PW_EXPORT void* mmap(void* addr, size_t length, int prot, int flags, int fd,
                     off_t offset) {
  Scope scope;
  if (!scope.ProgramSyscall(__builtin_return_address(0), SyscallKind::kMmap))
    return real.mmap ? real.mmap(addr, length, prot, flags, fd, offset)
                     : EarlyMmap(addr, length, prot, flags, fd, offset);
  uint64_t ns;
  void* result = Timed(&ns, [&] { return real.mmap(addr, length, prot, flags, fd, offset); });
  OnMmap(addr, length, prot, flags, fd, offset, result, ns);
  return result;
}

PW_EXPORT void* mmap64(void* addr, size_t length, int prot, int flags, int fd,
                       off64_t offset) {
  auto call = [&] {
    return real.mmap64 ? real.mmap64(addr, length, prot, flags, fd, offset)
                       : EarlyMmap(addr, length, prot, flags, fd, offset);
  };
  Scope scope;
  if (!scope.ProgramSyscall(__builtin_return_address(0), SyscallKind::kMmap)) return call();
  uint64_t ns;
  void* result = Timed(&ns, call);
  OnMmap(addr, length, prot, flags, fd, offset, result, ns);
  return result;
}

PW_EXPORT int munmap(void* addr, size_t length) {
  Scope scope;
  if (!scope.ProgramSyscall(__builtin_return_address(0), SyscallKind::kMunmap))
    return real.munmap ? real.munmap(addr, length) : producer::RawMunmap(addr, length);
  MunmapCall traced(addr, length);
  uint64_t ns;
  int rc = Timed(&ns, [&] { return real.munmap(addr, length); });
  traced.Done(rc, ns);
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
  if (!scope.ProgramSyscall(__builtin_return_address(0), SyscallKind::kMremap))
    return real.mremap(old_address, old_size, new_size, flags, new_address);
  MremapCall traced;
  uint64_t ns;
  void* result = Timed(&ns, [&] {
    return real.mremap(old_address, old_size, new_size, flags, new_address);
  });
  traced.Done(old_address, old_size, new_size, flags, new_address, result, ns);
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
  OnBrk(addr, before, ns);
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
  OnSbrk(increment, result, ns);
  return result;
}

namespace {

// mprotect and madvise: the range, and the protection or advice.
int TracedMemoryCall(const void* return_address, int (*call)(void*, size_t, int), long nr,
                     void* addr, size_t length, int argument) {
  auto run = [&] {
    if (call) return call(addr, length, argument);
    long rc = syscall(nr, addr, length, argument);
    return static_cast<int>(rc);
  };
  Scope scope;
  if (!scope.ProgramSyscall(return_address, SyscallKindOf(nr))) return run();
  uint64_t ns;
  int rc = Timed(&ns, run);
  OnMemoryCall(nr, addr, length, argument, rc, ns);
  return rc;
}

}  // namespace

PW_EXPORT int mprotect(void* addr, size_t length, int prot) {
  return TracedMemoryCall(__builtin_return_address(0), real.mprotect, SYS_mprotect, addr, length,
                          prot);
}

PW_EXPORT int madvise(void* addr, size_t length, int advice) {
  return TracedMemoryCall(__builtin_return_address(0), real.madvise, SYS_madvise, addr, length,
                          advice);
}

// ---- Module map changes ----------------------------------------------------

PW_EXPORT void* dlopen(const char* file, int mode) {
  // The real call runs outside any scope: the constructors of the library
  // it loads are the program's code, and their allocations are traced.
  void* handle = real.dlopen(file, mode);
  Scope scope;
  if (scope.active() && handle) OnModulesChanged();
  return handle;
}

PW_EXPORT int dlclose(void* handle) {
  int rc = real.dlclose(handle);
  Scope scope;
  if (rc == 0) ForgetUnwindRules();  // its code may be gone
  if (scope.active() && rc == 0) OnModulesChanged();
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
  BeforeExec();
  int rc = exec();
  int saved = errno;
  AfterFailedExec();
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

// ---- Signals ------------------------------------------------------------------
// While system calls are counted with Syscall User Dispatch, SIGSYS is ours
// (syscall_dispatch.h).

PW_EXPORT int sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  return ProgramSigaction(sig, act, old);
}

PW_EXPORT sighandler_t signal(int sig, sighandler_t handler) {
  return ProgramSignal(sig, handler);
}

PW_EXPORT int sigprocmask(int how, const sigset_t* set, sigset_t* old) {
  return ProgramSigprocmask(how, set, old);
}

PW_EXPORT int pthread_sigmask(int how, const sigset_t* set, sigset_t* old) {
  return ProgramPthreadSigmask(how, set, old);
}

PW_EXPORT int sigsuspend(const sigset_t* mask) { return ProgramSigsuspend(mask); }

// ---- Exit ---------------------------------------------------------------------

PW_EXPORT void exit(int status) {
  SetExitStatus(status);
  real.exit(status);
  __builtin_unreachable();
}

PW_EXPORT void _exit(int status) {
  OnUnderscoreExit(status);
  real._exit(status);
  __builtin_unreachable();
}

PW_EXPORT void _Exit(int status) {
  OnUnderscoreExit(status);
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
