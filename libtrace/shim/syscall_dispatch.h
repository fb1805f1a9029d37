// Counting the system calls an allocator makes, with Linux Syscall User
// Dispatch (SUD, kernel 5.11+).
//
// While the real allocator function runs, the thread's SUD selector is set
// to BLOCK: every system call it makes traps to our SIGSYS handler, which
// counts and times it, executes it with the selector ALLOW, and puts the
// result where the allocator expects it. Outside allocator calls the
// selector is ALLOW and system calls run untouched at full speed.
//
// The one range of code SUD never traps is the C library's lock wait and
// wake: a free on another thread than the allocation's contends for an
// arena lock, and a signal for each of its futex calls cost more than all
// the rest of tracing. Lock waits are the contention's cost, not the
// allocation's, and are not counted (PAGEWASTE_SYSCALLS=lock-waits traps
// and counts them, as does a thread with a CET shadow stack, which
// pw_resume_counting's return would not match).
//
// The traps to watch for:
// - The handler returns through rt_sigreturn, itself a system call, made by
//   our own restorer with the selector still ALLOW; it returns into a
//   counted call through a few instructions that set BLOCK again
//   (pw_resume_counting). Where lock waits are trapped, the restorer lies
//   in the allowed range instead and the handler sets BLOCK itself. The
//   handler is installed with the raw rt_sigaction system call, since the
//   C library would substitute its own restorer.
// - The kernel compares the address *after* the syscall instruction with
//   the range, so the range ends past the last syscall instruction.
// - A SIGSYS that is blocked when SUD forces it kills the process. So the
//   program is kept from blocking SIGSYS: the masks of the handlers it
//   installs, of sigprocmask, pthread_sigmask and sigsuspend lose it. Each
//   thread still asks the kernel once (one rt_sigprocmask) before its first
//   counted call, and again after any mask change through those functions,
//   and falls back to an estimate while SIGSYS is blocked: a thread the C
//   library starts with every signal blocked (timer and AIO helpers), or
//   the program's own SIGSYS handler, which runs inside ours. Asking on
//   every call cost ~220 ns, ten times the allocator call itself.
// - SUD is per thread and neither inherited by new threads nor by a forked
//   child: it is enabled lazily on a thread's first traced call, and turned
//   off before exec.
// - The program's own SIGSYS handler keeps working: SIGSYS signals that are
//   not ours are passed to it.
//
// Where SUD is unavailable (older kernel, seccomp policy refusing the prctl,
// PAGEWASTE_SYSCALLS=estimate), callers estimate from allocator state
// instead and mark the figures as estimated.
#pragma once

#include <signal.h>

#include <cstdint>

#include "format/events.h"

namespace pagewaste::shim {

// Probes for SUD and installs the SIGSYS handler. Returns false (estimates
// only) if SUD cannot be used. count_lock_waits: trap the C library's lock
// waits too, and count them as other system calls (slower where threads
// contend; PAGEWASTE_SYSCALLS=lock-waits).
bool InitSyscallDispatch(bool allowed, bool count_lock_waits);

// Brackets one real allocator call: counts what it makes while alive.
// Whether an AllocatorCall on this thread is counting exactly right now:
// every system call made outside the shim's code is being trapped and
// counted for that call.
bool CountingOnThisThread();

class AllocatorCall {
 public:
  AllocatorCall();
  ~AllocatorCall() { Stop(); }
  AllocatorCall(const AllocatorCall&) = delete;
  AllocatorCall& operator=(const AllocatorCall&) = delete;

  // Ends the counting (idempotent); call right after the real function.
  void Stop();
  // True when the call was counted exactly; false means "estimate".
  bool exact() const { return exact_; }
  // What was counted (zero when not exact).
  const SyscallCounts& counts() const { return counts_; }
  // Counted exactly, and no system call at all: the common case.
  bool exact_and_none() const { return exact_ && !trapped_; }
  // When not exact: whether the program break was seen to move during the
  // call (it differs after from before).
  bool break_seen_moving() const { return break_before_ != break_after_; }
  // The break after the call, when the call moved it (brk counted, or the
  // break seen to move); 0 otherwise.
  uintptr_t new_break() const { return new_break_; }

 private:
  bool exact_ = false;
  bool running_ = false;
  SyscallCounts counts_;
  SyscallCounts before_;
  uint64_t traps_before_ = 0;
  bool trapped_ = false;
  uintptr_t break_before_ = 0;
  uintptr_t break_after_ = 0;
  uintptr_t new_break_ = 0;
};

// Before exec: SUD off for this thread. Safe to call in any state.
void DisableSyscallDispatchForExec();

// The program's signal calls, with SIGSYS kept for dispatch while it is in
// use: sigaction and signal for SIGSYS set the program's handler, called for
// SIGSYS that are not ours; no handler's mask, sigprocmask,
// pthread_sigmask or sigsuspend mask may block SIGSYS (a blocked SIGSYS
// forced by dispatch ends the process), so that an allocator call need not
// ask the kernel whether SIGSYS is deliverable: the thread's answer is kept
// until its mask changes. Each returns what the C library's call would.
int ProgramSigaction(int sig, const struct sigaction* act, struct sigaction* old);
sighandler_t ProgramSignal(int sig, sighandler_t handler);
int ProgramSigprocmask(int how, const sigset_t* set, sigset_t* old);
int ProgramPthreadSigmask(int how, const sigset_t* set, sigset_t* old);
// A handler that runs while sigsuspend waits runs with its mask.
int ProgramSigsuspend(const sigset_t* mask);

}  // namespace pagewaste::shim
