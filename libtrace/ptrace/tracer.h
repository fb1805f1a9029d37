// The ptrace backend: runs a program the preload shim cannot see into
// (statically linked, or set-uid) under ptrace, with a seccomp filter that
// stops only its memory system calls, and writes the same trace format as
// the shim, one file per process.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pagewaste::ptrace {

struct TracerOptions {
  std::vector<std::string> command;
  std::string output_pattern;  // absolute; %p and %e as for the shim
  uint64_t session_id = 0;
};

// Runs and traces the command. Returns the program's exit status (128+N
// for signal N), 126/127 when it cannot be started, or -1 with *err when
// tracing itself failed.
int RunUnderPtrace(const TracerOptions& options, std::string* err);

}  // namespace pagewaste::ptrace
