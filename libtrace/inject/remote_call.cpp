// See remote_call.h. The call is made the way gdb makes one: the thread's
// registers are saved, its stack pointer moved below the red zone, a return
// address of 0 pushed (the function's return faults there, and the fault's
// stop ends the call) and the arguments put in their registers. orig_rax is
// set to -1 so that the kernel neither runs nor restarts a system call on
// the way out of the stop.
#include "remote_call.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "format/clock.h"
#include "format/syscall_kind.h"

namespace pagewaste::inject {
namespace {

// System calls a thread may be in while it holds a lock the function
// called could want: the allocator's own (mmap and the rest, made under
// its arena's lock), a futex (any lock), and the ends of a process.
bool Risky(long nr) {
  if (SyscallKindOf(nr) != format::SyscallKind::kOther) return true;
  switch (nr) {
    case SYS_futex: case SYS_exit: case SYS_exit_group: case SYS_execve: case SYS_execveat:
    case SYS_rt_sigreturn:
      return true;
    default:
      return false;
  }
}

std::string Errno(const char* what) { return std::string(what) + ": " + strerror(errno); }

}  // namespace

RemoteThread::RemoteThread(pid_t tid, std::vector<CodeRange> unsafe_code)
    : tid_(tid), unsafe_code_(std::move(unsafe_code)) {
  if (ptrace(PTRACE_SEIZE, tid, nullptr, reinterpret_cast<void*>(PTRACE_O_TRACESYSGOOD)) != 0) {
    error_ = Errno("cannot trace it");
    return;
  }
  attached_ = true;
  mem_fd_ = open(("/proc/" + std::to_string(tid) + "/mem").c_str(), O_RDWR | O_CLOEXEC);
  if (mem_fd_ < 0) {
    error_ = Errno("cannot open its memory");
    return;
  }
  if (!FindSafePoint()) return;
  stopped_ = true;
  // Below the red zone (128 bytes) and then some.
  stack_top_ = (saved_.rsp - 512) & ~uint64_t{15};
}

RemoteThread::~RemoteThread() {
  if (mem_fd_ >= 0) close(mem_fd_);
  if (!attached_) return;
  if (!stopped_) {
    // Running to a system call's entry when it gave up: stop it first.
    ptrace(PTRACE_INTERRUPT, tid_, nullptr, nullptr);
    int status;
    WaitStop(&status, 1000);
    ptrace(PTRACE_DETACH, tid_, nullptr, nullptr);
    return;
  }
  user_regs_struct regs = saved_;
  if (called_ && at_syscall_entry_) {
    // The call stood in for the system call: make it again, from its
    // instruction.
    regs.rip -= 2;
    regs.rax = regs.orig_rax;
    regs.orig_rax = static_cast<uint64_t>(-1);
  }
  ptrace(PTRACE_SETREGS, tid_, nullptr, &regs);
  ptrace(PTRACE_DETACH, tid_, nullptr, nullptr);
}

bool RemoteThread::WaitStop(int* status, int timeout_ms) {
  uint64_t deadline = MonotonicNs() + static_cast<uint64_t>(timeout_ms) * 1000000u;
  for (;;) {
    pid_t r = waitpid(tid_, status, __WALL | WNOHANG);
    if (r == tid_) return true;
    if (r < 0 || MonotonicNs() >= deadline) return false;
    timespec pause{0, 200000};
    nanosleep(&pause, nullptr);
  }
}

bool RemoteThread::Resume(int signal) {
  auto data = reinterpret_cast<void*>(static_cast<long>(signal));
  return ptrace(PTRACE_CONT, tid_, nullptr, data) == 0;
}

bool RemoteThread::SafeOutsideSystemCall() const {
  for (const CodeRange& r : unsafe_code_)
    if (saved_.rip >= r.start && saved_.rip < r.end) return false;
  return true;
}

// Interrupted inside a system call that is not risky: there. Otherwise at
// the entry of the next one that is not, or after 200 ms, wherever an
// interrupt every 10 ms finds it outside the C library and the loader.
bool RemoteThread::FindSafePoint() {
  if (ptrace(PTRACE_INTERRUPT, tid_, nullptr, nullptr) != 0) {
    error_ = Errno("cannot stop it");
    return false;
  }
  uint64_t start = MonotonicNs();
  uint64_t deadline = start + 1000000000u;
  bool interrupting = true;  // an interrupt is on its way
  for (;;) {
    int status;
    if (!WaitStop(&status, 10)) {
      if (MonotonicNs() >= deadline) {
        error_ = "it was not at a point where a call could be made within a second";
        return false;
      }
      if (!interrupting && MonotonicNs() - start > 200000000u) {
        ptrace(PTRACE_INTERRUPT, tid_, nullptr, nullptr);
        interrupting = true;
      }
      continue;
    }
    if (!WIFSTOPPED(status)) {
      attached_ = false;
      error_ = "it exited";
      return false;
    }
    int sig = WSTOPSIG(status);
    int event = status >> 16;
    bool syscall_stop = sig == (SIGTRAP | 0x80);
    if (event == PTRACE_EVENT_STOP || syscall_stop) {
      if (ptrace(PTRACE_GETREGS, tid_, nullptr, &saved_) != 0) {
        error_ = Errno("cannot read its registers");
        return false;
      }
      long nr = static_cast<long>(saved_.orig_rax);
      if (syscall_stop) {
        __ptrace_syscall_info info{};
        long got = ptrace(PTRACE_GET_SYSCALL_INFO, tid_, reinterpret_cast<void*>(sizeof info),
                          &info);
        if (got > 0 && info.op == PTRACE_SYSCALL_INFO_ENTRY && !Risky(nr)) {
          at_syscall_entry_ = true;
          return true;
        }
      } else {
        interrupting = false;
        if (nr >= 0 ? !Risky(nr)
                    : MonotonicNs() - start > 200000000u && SafeOutsideSystemCall())
          return true;
      }
      sig = 0;
    }
    auto data = reinterpret_cast<void*>(static_cast<long>(sig));
    if (ptrace(PTRACE_SYSCALL, tid_, nullptr, data) != 0) {
      error_ = Errno("cannot run it to a system call");
      return false;
    }
  }
}

uint64_t RemoteThread::Push(const void* data, size_t size) {
  uint64_t at = (stack_top_ - size) & ~uint64_t{15};
  if (pwrite(mem_fd_, data, size, static_cast<off_t>(at)) != static_cast<ssize_t>(size)) {
    error_ = Errno("cannot write its stack");
    return 0;
  }
  stack_top_ = at;
  return at;
}

bool RemoteThread::Call(uint64_t function, const std::vector<uint64_t>& args, uint64_t* result) {
  if (!stopped_ || args.size() > 6) return false;
  user_regs_struct regs = saved_;
  uint64_t sp = stack_top_ - 8;  // at the entry, sp + 8 is 16-aligned
  uint64_t return_address = 0;
  if (pwrite(mem_fd_, &return_address, 8, static_cast<off_t>(sp)) != 8) {
    error_ = Errno("cannot write its stack");
    return false;
  }
  regs.rsp = sp;
  regs.rip = function;
  regs.rax = 0;
  regs.orig_rax = static_cast<uint64_t>(-1);
  unsigned long long* slots[] = {&regs.rdi, &regs.rsi, &regs.rdx, &regs.rcx, &regs.r8, &regs.r9};
  for (size_t i = 0; i < args.size(); ++i) *slots[i] = args[i];
  if (ptrace(PTRACE_SETREGS, tid_, nullptr, &regs) != 0) {
    error_ = Errno("cannot set its registers");
    return false;
  }
  called_ = true;
  int signal = 0;
  for (;;) {
    if (!Resume(signal)) {
      error_ = Errno("cannot run it");
      return false;
    }
    int status;
    if (!WaitStop(&status, 10000)) {
      error_ = "the call did not return in 10 s";
      ptrace(PTRACE_INTERRUPT, tid_, nullptr, nullptr);
      WaitStop(&status, 1000);
      return false;
    }
    if (!WIFSTOPPED(status)) {
      attached_ = stopped_ = false;
      error_ = "it exited during the call";
      return false;
    }
    signal = WSTOPSIG(status);
    if (status >> 16 == PTRACE_EVENT_STOP) {
      signal = 0;
      continue;
    }
    if (signal == SIGSEGV) {
      user_regs_struct after;
      if (ptrace(PTRACE_GETREGS, tid_, nullptr, &after) == 0 && after.rip == 0) {
        *result = after.rax;
        return true;
      }
      error_ = "the call faulted";
      return false;
    }
    // Another signal: delivered, as it would have been during any call.
  }
}

std::string RemoteThread::ReadString(uint64_t address, size_t max) {
  std::string s(max, '\0');
  ssize_t n = address ? pread(mem_fd_, s.data(), max, static_cast<off_t>(address)) : 0;
  s.resize(n > 0 ? static_cast<size_t>(n) : 0);
  size_t end = s.find('\0');
  if (end != std::string::npos) s.resize(end);
  return s;
}

}  // namespace pagewaste::inject
