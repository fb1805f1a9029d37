// The seccomp filter that stops the traced program's memory system calls for
// the tracer (seccomp_filter.h).
#include "seccomp_filter.h"

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "format/syscall_kind.h"

namespace pagewaste::ptrace {

bool IsTracedSyscall(long nr) { return SyscallKindOf(nr) != format::SyscallKind::kOther; }

bool InstallMemorySyscallFilter(std::string* err) {
  constexpr unsigned kCount = sizeof kMemorySyscalls / sizeof kMemorySyscalls[0];
  // arch check, load nr, one jump per traced call, allow, trace.
  struct sock_filter program[4 + kCount + 2];
  unsigned n = 0;
  program[n++] = BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
  // Another ABI (x32, i386 int 0x80): let it through untraced.
  program[n++] = BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
  program[n++] = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  program[n++] = BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
  for (unsigned i = 0; i < kCount; ++i) {
    // Jump to the final "trace" statement: it is (kCount - i) statements on.
    unsigned to_trace = kCount - i;
    program[n++] = BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<unsigned>(kMemorySyscalls[i].number),
                            static_cast<unsigned char>(to_trace), 0);
  }
  program[n++] = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  program[n++] = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE);
  struct sock_fprog fprog = {static_cast<unsigned short>(n), program};
  // With CAP_SYS_ADMIN (root) the filter goes in as it is, and a set-uid
  // program the tree execs gains its identity as it would untraced (a tracer
  // with CAP_SYS_PTRACE may trace it so). Anyone else must first give up
  // gaining privileges (PR_SET_NO_NEW_PRIVS); the tracer then refuses such a
  // program at its exec.
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) == 0) return true;
  if (errno != EACCES || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
      syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0) {
    *err = std::string("cannot install the seccomp filter: ") + strerror(errno);
    return false;
  }
  return true;
}

}  // namespace pagewaste::ptrace
