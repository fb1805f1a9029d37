// Which SyscallKind (format.h) an x86-64 system call number is: shared by
// the shim's dispatch handler and the ptrace backend.
#pragma once

#include <sys/syscall.h>

#include "format.h"

namespace pagewaste {

inline format::SyscallKind SyscallKindOf(long nr) {
  using format::SyscallKind;
  switch (nr) {
    case SYS_mmap: return SyscallKind::kMmap;
    case SYS_munmap: return SyscallKind::kMunmap;
    case SYS_mremap: return SyscallKind::kMremap;
    case SYS_brk: return SyscallKind::kBrk;
    case SYS_madvise: return SyscallKind::kMadvise;
    case SYS_mprotect: return SyscallKind::kMprotect;
    default: return SyscallKind::kOther;
  }
}

}  // namespace pagewaste
