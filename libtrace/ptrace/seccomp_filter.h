// The seccomp-bpf filter the ptrace backend installs in the traced program
// before exec: memory system calls stop for the tracer (SECCOMP_RET_TRACE),
// every other system call runs at full speed. The filter is inherited by
// threads, children and exec'd images, which is what the tracer wants.
#pragma once

#include <string>

namespace pagewaste::ptrace {

// Installs the filter in the calling process (sets no_new_privs first).
// Must run with the tracer already attached: a RET_TRACE with no tracer
// fails the system call. False with *err on failure.
bool InstallMemorySyscallFilter(std::string* err);

// True for the system calls the filter sends to the tracer.
bool IsTracedSyscall(long nr);

}  // namespace pagewaste::ptrace
