// Counting an allocator's system calls with Syscall User Dispatch: the SIGSYS
// handler and its rules (syscall_dispatch.h).
#include "syscall_dispatch.h"

#include <dlfcn.h>
#include <link.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "real_functions.h"
#include "format/clock.h"
#include "format/syscall_kind.h"
#include "trace.h"

#ifndef PR_SET_SYSCALL_USER_DISPATCH
#define PR_SET_SYSCALL_USER_DISPATCH 59
#define PR_SYS_DISPATCH_OFF 0
#define PR_SYS_DISPATCH_ON 1
#endif
#ifndef SYSCALL_DISPATCH_FILTER_ALLOW
#define SYSCALL_DISPATCH_FILTER_ALLOW 0
#define SYSCALL_DISPATCH_FILTER_BLOCK 1
#endif
#ifndef SYS_USER_DISPATCH
#define SYS_USER_DISPATCH 2
#endif

// The shim's raw system call and the SIGSYS handler's restorer. Where the
// allowed range is the C library's lock code (AllowedRange below), both run
// only while the thread's selector is ALLOW (the handler sets it before
// either); otherwise the allowed range is theirs.
extern "C" {
long pw_raw_syscall(long nr, long a1, long a2, long a3, long a4, long a5, long a6);
void pw_sigreturn();
void pw_resume_counting();
extern const char pw_own_syscalls_begin[];
extern const char pw_own_syscalls_end[];
}

// The thread's SUD switch (the kernel reads it on every system call), and
// where the handler's returns into a counted allocator call resume: see
// pw_resume_counting. The assembly below reaches both by name.
struct ResumeRing {
  uint64_t top;  // index of the newest entry, 0 to 7
  uint64_t address[8];
};
extern "C" {
__attribute__((visibility("hidden"), tls_model("initial-exec"))) thread_local volatile char
    pw_selector = SYSCALL_DISPATCH_FILTER_ALLOW;
__attribute__((visibility("hidden"), tls_model("initial-exec"))) thread_local ResumeRing
    pw_resume_ring;
}

asm(R"(
  .text
  .globl pw_own_syscalls_begin
  .hidden pw_own_syscalls_begin
pw_own_syscalls_begin:
  .globl pw_raw_syscall
  .hidden pw_raw_syscall
  .type pw_raw_syscall, @function
pw_raw_syscall:
  mov %rdi, %rax
  mov %rsi, %rdi
  mov %rdx, %rsi
  mov %rcx, %rdx
  mov %r8, %r10
  mov %r9, %r8
  mov 8(%rsp), %r9
  syscall
  ret
  .size pw_raw_syscall, .-pw_raw_syscall
  .globl pw_sigreturn
  .hidden pw_sigreturn
  .type pw_sigreturn, @function
pw_sigreturn:
  mov $15, %rax
  syscall
  .size pw_sigreturn, .-pw_sigreturn
  .globl pw_own_syscalls_end
  .hidden pw_own_syscalls_end
pw_own_syscalls_end:
  nop

  # Where the SIGSYS handler returns to when it interrupted a counted
  # allocator call: it leaves the selector ALLOW so that its own
  # rt_sigreturn is not trapped, and this sets it back to BLOCK before the
  # allocator goes on. Every register and flag is the allocator's: this
  # saves what it uses below the red zone, takes the address to resume at
  # from the thread's ring (a ring, because a program's signal handler that
  # calls malloc can interrupt this very code and come back through it),
  # and returns there, giving back the red zone with "ret $128".
  .globl pw_resume_counting
  .hidden pw_resume_counting
  .type pw_resume_counting, @function
pw_resume_counting:
  lea -128(%rsp), %rsp
  push %rax
  pushfq
  push %rax
  push %rcx
  movq pw_resume_ring@gottpoff(%rip), %rax
  addq %fs:0, %rax
  movq (%rax), %rcx
  movq 8(%rax,%rcx,8), %rcx
  movq %rcx, 24(%rsp)
  movq (%rax), %rcx
  subq $1, %rcx
  andq $7, %rcx
  movq %rcx, (%rax)
  movq pw_selector@gottpoff(%rip), %rax
  movb $1, %fs:(%rax)
  pop %rcx
  pop %rax
  popfq
  ret $128
  .size pw_resume_counting, .-pw_resume_counting
)");

namespace pagewaste::shim {
namespace {

using format::SyscallKind;

// The process whose SUD this thread turned on (a forked child turns it on
// again), and what the thread's handler has counted so far.
thread_local uint32_t t_enabled_pid __attribute__((tls_model("initial-exec"))) = 0;
thread_local SyscallCounts t_tally __attribute__((tls_model("initial-exec")));
// Trapped system calls so far: when it has not moved, a call made none, and
// its counts need no arithmetic (the common case by far).
thread_local uint64_t t_traps __attribute__((tls_model("initial-exec"))) = 0;
// Set when a program's signal handler returned inside the window (OnSigsys).
thread_local bool t_window_broken __attribute__((tls_model("initial-exec"))) = false;
// Whether SIGSYS was deliverable when this thread (of process t_mask_pid)
// last asked; t_mask_pid 0: ask again.
thread_local uint32_t t_mask_pid __attribute__((tls_model("initial-exec"))) = 0;
thread_local bool t_sigsys_deliverable __attribute__((tls_model("initial-exec"))) = false;
// Inside our SIGSYS handler, where SIGSYS is blocked: the program's own
// SIGSYS handler runs there and may allocate.
thread_local int t_in_handler __attribute__((tls_model("initial-exec"))) = 0;

bool g_active = false;

// The program's own SIGSYS disposition, which ours stands in front of.
struct sigaction g_program_sigsys;

// The kernel's struct sigaction on x86-64 (not the C library's).
struct KernelSigaction {
  void* handler;
  unsigned long flags;
  void (*restorer)();
  uint64_t mask;
};
constexpr unsigned long kSaRestorer = 0x04000000;

void PassToProgram(int sig, siginfo_t* info, void* context) {
  const struct sigaction& p = g_program_sigsys;
  if (p.sa_flags & SA_SIGINFO) {
    if (p.sa_sigaction) p.sa_sigaction(sig, info, context);
    return;
  }
  if (p.sa_handler == SIG_IGN) return;
  if (p.sa_handler != SIG_DFL) {
    p.sa_handler(sig);
    return;
  }
  // The default action: SIGSYS ends the process. Put it back and deliver
  // the signal again; it arrives once this handler returns.
  KernelSigaction dfl = {reinterpret_cast<void*>(SIG_DFL), 0, nullptr, 0};
  pw_raw_syscall(SYS_rt_sigaction, SIGSYS, reinterpret_cast<long>(&dfl), 0, 8, 0, 0);
  pw_raw_syscall(SYS_tgkill, pw_raw_syscall(SYS_getpid, 0, 0, 0, 0, 0, 0),
                 pw_raw_syscall(SYS_gettid, 0, 0, 0, 0, 0, 0), SIGSYS, 0, 0, 0);
}

// rt_sigprocmask on behalf of the interrupted code must change the mask in
// its saved context: rt_sigreturn restores that mask, and would undo a
// change made here. SIGSYS is never blocked, for the reason at the top.
long EmulateSigprocmask(ucontext_t* uc, long how, long set_address, long old_address,
                        long size) {
  if (size != 8) return -EINVAL;
  uint64_t* mask = reinterpret_cast<uint64_t*>(&uc->uc_sigmask);
  if (old_address) *reinterpret_cast<uint64_t*>(old_address) = *mask;
  if (!set_address) return 0;
  uint64_t set = *reinterpret_cast<const uint64_t*>(set_address);
  switch (how) {
    case SIG_BLOCK: *mask |= set; break;
    case SIG_UNBLOCK: *mask &= ~set; break;
    case SIG_SETMASK: *mask = set; break;
    default: return -EINVAL;
  }
  *mask &= ~((uint64_t{1} << (SIGKILL - 1)) | (uint64_t{1} << (SIGSTOP - 1)) |
             (uint64_t{1} << (SIGSYS - 1)));
  return 0;
}

// A stretch of code whose system calls are never trapped.
struct CodeRange {
  uintptr_t begin = 0;
  uintptr_t end = 0;  // past the last syscall instruction: the kernel
                      // compares the address after it
};

CodeRange g_allowed;

// Whether the allowed range is the shim's own raw system call and restorer
// (AllowedRange): the handler's rt_sigreturn is then never trapped.
bool OwnRange() { return g_allowed.begin == reinterpret_cast<uintptr_t>(pw_own_syscalls_begin); }

// Returns from the handler into the interrupted code with the selector it
// had. Where the allowed range is the C library's lock code, the selector
// stays ALLOW until rt_sigreturn is behind; pw_resume_counting sets BLOCK
// again.
void ResumeWith(char selector, greg_t* r) {
  if (selector != SYSCALL_DISPATCH_FILTER_BLOCK) return;
  if (OwnRange()) {
    pw_selector = selector;
    return;
  }
  uint64_t top = (pw_resume_ring.top + 1) & 7;
  pw_resume_ring.address[top] = static_cast<uint64_t>(r[REG_RIP]);
  pw_resume_ring.top = top;
  r[REG_RIP] = reinterpret_cast<greg_t>(&pw_resume_counting);
}

void OnSigsys(int sig, siginfo_t* info, void* context) {
  char selector = pw_selector;
  pw_selector = SYSCALL_DISPATCH_FILTER_ALLOW;
  auto* uc = static_cast<ucontext_t*>(context);
  greg_t* r = uc->uc_mcontext.gregs;
  if (info->si_code != SYS_USER_DISPATCH) {
    // Not a trap of ours (a seccomp filter's, or sent): the program's. Its
    // handler's system calls are not the allocator's.
    ++t_in_handler;
    PassToProgram(sig, info, context);
    --t_in_handler;
    ResumeWith(selector, r);
    return;
  }
  long nr = info->si_syscall;
  if (nr == SYS_rt_sigreturn) {
    // A handler of the program's returning in the middle of an allocator
    // call, through a restorer outside our range. rt_sigreturn works on the
    // stack it is called with, so it cannot be made from here: step back
    // onto the syscall instruction and let it run again with dispatch
    // allowed. The rest of this allocator call goes uncounted, so the call
    // is reported as estimated.
    r[REG_RIP] -= 2;  // "syscall" is 0f 05
    r[REG_RAX] = SYS_rt_sigreturn;
    t_window_broken = true;
    return;  // the selector stays ALLOW
  }
  uint64_t start = MonotonicNs();
  long result = nr == SYS_rt_sigprocmask
                    ? EmulateSigprocmask(uc, r[REG_RDI], r[REG_RSI], r[REG_RDX], r[REG_R10])
                    : pw_raw_syscall(nr, r[REG_RDI], r[REG_RSI], r[REG_RDX], r[REG_R10], r[REG_R8],
                                     r[REG_R9]);
  t_tally.ns += MonotonicNs() - start;
  t_tally.Add(SyscallKindOf(nr));
  ++t_traps;
  r[REG_RAX] = result;
  ResumeWith(selector, r);
}

bool InstallHandler() {
  KernelSigaction act = {reinterpret_cast<void*>(&OnSigsys), SA_SIGINFO | kSaRestorer,
                         &pw_sigreturn, ~uint64_t{0}};
  KernelSigaction old;
  long rc = pw_raw_syscall(SYS_rt_sigaction, SIGSYS, reinterpret_cast<long>(&act),
                           reinterpret_cast<long>(&old), 8, 0, 0);
  if (rc != 0) return false;
  // Whatever was there (usually the default) is now the program's.
  memset(&g_program_sigsys, 0, sizeof g_program_sigsys);
  g_program_sigsys.sa_handler = reinterpret_cast<void (*)(int)>(old.handler);
  g_program_sigsys.sa_flags = static_cast<int>(old.flags & ~kSaRestorer);
  return true;
}


CodeRange FunctionExtent(const char* name) {
  void* address = dlsym(RTLD_DEFAULT, name);
  Dl_info info;
  void* extra = nullptr;
  if (!address || !dladdr1(address, &info, &extra, RTLD_DL_SYMENT) || !extra) return {};
  const auto* symbol = static_cast<const ElfW(Sym)*>(extra);
  if (!symbol->st_size) return {};
  auto begin = reinterpret_cast<uintptr_t>(address);
  return {begin, begin + symbol->st_size};
}

// Whether every system call instruction in the range is a futex call: each
// "syscall" (0f 05) follows a "mov $SYS_futex, %eax" (b8 ca 00 00 00)
// closely. Anything else found there, or bytes that merely look like a
// system call, and the range is not used.
bool OnlyFutexCalls(CodeRange range) {
  static_assert(SYS_futex == 0xca);
  const unsigned char kMovFutex[] = {0xb8, 0xca, 0x00, 0x00, 0x00};
  const auto* code = reinterpret_cast<const unsigned char*>(range.begin);
  size_t size = range.end - range.begin;
  int calls = 0;
  for (size_t i = 0; i + 1 < size; ++i) {
    if (code[i] != 0x0f || code[i + 1] != 0x05) continue;
    bool futex = false;
    for (size_t j = i >= 16 ? i - 16 : 0; j + sizeof kMovFutex <= i && !futex; ++j)
      futex = memcmp(code + j, kMovFutex, sizeof kMovFutex) == 0;
    if (!futex) return false;
    ++calls;
  }
  return calls > 0;
}

// The range whose system calls run untrapped. glibc's lock wait and wake
// (the futex calls of a contended lock, adjacent in its lowlevellock code)
// when they can be found and hold nothing else: a program that frees on
// another thread than it allocated contends on an arena lock in malloc and
// free, and trapping each of those futex calls cost more than the rest of
// tracing put together. They are not memory system calls: the counts lose
// only lock waits, which are not the allocation's cost but the contention's.
// Otherwise (PAGEWASTE_SYSCALLS=lock-waits, or a thread with a shadow
// stack, whose "ret" in pw_resume_counting would not match it) the shim's
// own raw system call and restorer, and lock waits are counted as other
// system calls.
CodeRange AllowedRange(bool count_lock_waits) {
  constexpr int kArchShstkStatus = 0x5005;  // arch_prctl: CET shadow stack state
  unsigned long shadow_stack = 0;
  syscall(SYS_arch_prctl, kArchShstkStatus, &shadow_stack);
  CodeRange wait = FunctionExtent("__lll_lock_wait_private");
  CodeRange wake = FunctionExtent("__lll_lock_wake_private");
  CodeRange locks = {wait.begin, wake.end};
  bool use_locks = !count_lock_waits && !(shadow_stack & 1) && wait.begin && wake.begin &&
                   wait.begin < wake.begin && wake.end - wait.begin <= 1024 &&
                   OnlyFutexCalls(locks);
  if (use_locks) return locks;
  return {reinterpret_cast<uintptr_t>(pw_own_syscalls_begin),
          reinterpret_cast<uintptr_t>(pw_own_syscalls_end) + 1};
}

bool EnableOnThisThread() {
  uint32_t pid = g_trace.info().pid;
  if (t_enabled_pid == pid) return true;
  pw_selector = SYSCALL_DISPATCH_FILTER_ALLOW;
  if (prctl(PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_ON, g_allowed.begin,
            g_allowed.end - g_allowed.begin, &pw_selector) != 0)
    return false;
  t_enabled_pid = pid;
  return true;
}

// A SIGSYS forced while blocked would kill the process instead of reaching
// our handler. The kernel is asked once per thread and mask change (see the
// header).
bool SigsysDeliverable() {
  if (t_in_handler) return false;
  uint32_t pid = g_trace.info().pid;
  if (t_mask_pid == pid) return t_sigsys_deliverable;
  uint64_t blocked = 0;
  t_sigsys_deliverable =
      pw_raw_syscall(SYS_rt_sigprocmask, SIG_BLOCK, 0, reinterpret_cast<long>(&blocked), 8, 0,
                     0) == 0 &&
      !(blocked & (uint64_t{1} << (SIGSYS - 1)));
  t_mask_pid = pid;
  return t_sigsys_deliverable;
}

}  // namespace

bool InitSyscallDispatch(bool allowed, bool count_lock_waits) {
  g_allowed = AllowedRange(count_lock_waits);
  g_active = allowed && EnableOnThisThread() && InstallHandler();
  if (!g_active && t_enabled_pid) {
    prctl(PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_OFF, 0, 0, 0);
    t_enabled_pid = 0;
  }
  return g_active;
}

bool CountingOnThisThread() { return pw_selector == SYSCALL_DISPATCH_FILTER_BLOCK; }

AllocatorCall::AllocatorCall() {
  running_ = true;
  if (!g_active || !EnableOnThisThread() || !SigsysDeliverable()) {
    break_before_ = CurrentBreak();
    return;
  }
  exact_ = true;
  traps_before_ = t_traps;
  before_ = t_tally;
  t_window_broken = false;
  pw_selector = SYSCALL_DISPATCH_FILTER_BLOCK;
}

void AllocatorCall::Stop() {
  if (!running_) return;
  running_ = false;
  if (!exact_) {
    break_after_ = CurrentBreak();
    if (break_seen_moving()) new_break_ = break_after_;
    return;
  }
  pw_selector = SYSCALL_DISPATCH_FILTER_ALLOW;
  if (t_window_broken) {
    // Part of the call ran uncounted: estimate it instead.
    exact_ = false;
    break_before_ = break_after_ = 0;
    return;
  }
  if (t_traps == traps_before_) return;
  trapped_ = true;
  for (int i = 0; i < format::kSyscallKinds; ++i)
    counts_.count[i] = t_tally.count[i] - before_.count[i];
  counts_.ns = t_tally.ns - before_.ns;
  if (counts_.count[static_cast<int>(format::SyscallKind::kBrk)]) new_break_ = CurrentBreak();
}

void DisableSyscallDispatchForExec() {
  pw_selector = SYSCALL_DISPATCH_FILTER_ALLOW;
  if (t_enabled_pid) prctl(PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_OFF, 0, 0, 0);
  t_enabled_pid = 0;
}

namespace {

// The program's SIGSYS handler, kept apart from ours while dispatch is in
// use; called for SIGSYS that are not ours.
int ProgramSigsysAction(const struct sigaction* act, struct sigaction* old) {
  if (old) *old = g_program_sigsys;
  if (act) g_program_sigsys = *act;
  return 0;
}

int RawSigprocmask(int how, const sigset_t* set, sigset_t* old) {
  long rc = syscall(SYS_rt_sigprocmask, how, set, old, 8);
  return rc == 0 ? 0 : -1;
}

// fn(how, set, old) with SIGSYS taken out of a mask that would block it;
// the thread's mask is asked of the kernel again before its next counted
// call.
int SetMask(int (*fn)(int, const sigset_t*, sigset_t*), int how, const sigset_t* set,
            sigset_t* old) {
  sigset_t copy;
  if (g_active && set && how != SIG_UNBLOCK) {
    copy = *set;
    sigdelset(&copy, SIGSYS);
    set = &copy;
  }
  int rc = fn(how, set, old);
  t_mask_pid = 0;
  return rc;
}

}  // namespace

int ProgramSigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  if (sig == SIGSYS && g_active) return ProgramSigsysAction(act, old);
  if (!act || !g_active) return real.sigaction(sig, act, old);
  struct sigaction copy = *act;
  sigdelset(&copy.sa_mask, SIGSYS);
  return real.sigaction(sig, &copy, old);
}

sighandler_t ProgramSignal(int sig, sighandler_t handler) {
  if (sig != SIGSYS || !g_active) return real.signal(sig, handler);
  struct sigaction act, old;
  memset(&act, 0, sizeof act);
  act.sa_handler = handler;
  act.sa_flags = SA_RESTART;  // the C library's signal() has BSD semantics
  ProgramSigsysAction(&act, &old);
  return old.sa_handler;
}

int ProgramSigprocmask(int how, const sigset_t* set, sigset_t* old) {
  return SetMask(real.sigprocmask ? real.sigprocmask : RawSigprocmask, how, set, old);
}

int ProgramPthreadSigmask(int how, const sigset_t* set, sigset_t* old) {
  if (!real.pthread_sigmask) {
    int rc = SetMask(RawSigprocmask, how, set, old);
    return rc == 0 ? 0 : errno;
  }
  return SetMask(real.pthread_sigmask, how, set, old);
}

int ProgramSigsuspend(const sigset_t* mask) {
  sigset_t copy;
  if (g_active) {
    copy = *mask;
    sigdelset(&copy, SIGSYS);
    mask = &copy;
  }
  if (real.sigsuspend) return real.sigsuspend(mask);
  return static_cast<int>(syscall(SYS_rt_sigsuspend, mask, 8));
}

}  // namespace pagewaste::shim
