// Ending a trace whose process could not: a process that leaves with an
// exit system call of its own (Go's runtime, syscall(SYS_exit_group)) never
// runs the shim's exit handlers, so its trace has no End record and would
// read as if the process had been killed. `pagewaste run`, whose tracer saw
// the exit and its status, appends the End record after the process is
// gone (format::EndReason::kRawExit), so that only a trace whose process
// was really killed reads as truncated.
#pragma once

#include <cstdint>
#include <string>

#include "format/events.h"

namespace pagewaste {

enum class Completion {
  kCompleted,      // the End record was appended
  kAlreadyEnded,   // the trace has its End record: nothing to do
  kNotCompletable  // damaged, or cut inside a chunk: left as it is (*why)
};

// Appends an End record of reason kRawExit with exit_status to the trace at
// path, whose writer is gone. The last chunk, left unfinished by the dead
// writer, is marked finished; the space the writer had reserved past it is
// dropped. A ptrace observer's counts (--observe-syscalls), which the shim
// would have put in its End record, go in this one.
Completion CompleteTrace(const std::string& path, int64_t exit_status, std::string* why,
                         const SyscallCounts& observed = {},
                         const SyscallCounts& before_start = {});

}  // namespace pagewaste
