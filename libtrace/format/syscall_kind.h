// The memory system calls pagewaste counts, each with its SyscallKind
// (format.h): the one list of them, from which the shim's dispatch handler
// and the ptrace backend's decoder tell a call's kind, and the ptrace
// backend builds its seccomp filter. x86-64 numbers.
#pragma once

#include <sys/syscall.h>

#include "format.h"

namespace pagewaste {

struct MemorySyscall {
  long number;
  format::SyscallKind kind;
};

inline constexpr MemorySyscall kMemorySyscalls[] = {
    {SYS_mmap, format::SyscallKind::kMmap},       {SYS_munmap, format::SyscallKind::kMunmap},
    {SYS_mremap, format::SyscallKind::kMremap},   {SYS_brk, format::SyscallKind::kBrk},
    {SYS_madvise, format::SyscallKind::kMadvise}, {SYS_mprotect, format::SyscallKind::kMprotect},
};

// kOther for any call not in the list.
inline constexpr format::SyscallKind SyscallKindOf(long nr) {
  for (const MemorySyscall& call : kMemorySyscalls)
    if (call.number == nr) return call.kind;
  return format::SyscallKind::kOther;
}

// Every kind but kOther has its call.
static_assert(sizeof kMemorySyscalls / sizeof kMemorySyscalls[0] == format::kSyscallKinds - 1);

}  // namespace pagewaste
