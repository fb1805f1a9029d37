// `pagewaste run`: starts a program traced by the backend that suits it (the
// preload shim, ptrace or bpf), passes its stdin/stdout/stderr and signals
// through, finishes its traces, and exits as it did. `pagewaste attach`:
// the same for a process already running, from now on.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "format/format.h"

namespace pagewaste {

struct RunOptions {
  std::string output_pattern;  // may hold %p and %e; empty: the default
  std::vector<std::string> command;
  std::optional<format::Backend> backend;  // none: auto (ChooseBackend)
  // Preload backend: count every memory system call of the process with a
  // ptrace observer, so that those made outside allocator calls are known.
  bool observe_syscalls = false;
  // Rewrite each closed trace with zstd once the program has exited.
  bool compress = true;
  // Then append its symbol section (embed_symbols.h).
  bool symbolize = true;
  // Record the malloc family by sampling, one sample per this many bytes
  // requested on average (0: record every call). Preload backend.
  uint64_t sample_bytes = 0;
  // The bpf backend's ring buffer (bytes, a power of two).
  uint64_t ring_bytes = 64 << 20;
};

// What auto picks for PROGRAM (found on PATH like execvp does): for a
// program the dynamic loader will not preload into (no PT_INTERP: statically
// linked), bpf when we may load BPF programs, else ptrace; ptrace for a
// set-uid or set-gid one when we may trace it with its privileges; preload
// otherwise. None when no backend can trace it without changing what it
// does (a set-uid program run by a user who may not trace it with its
// privileges): it runs as it would without pagewaste, and run says so.
// *why says which it was, and why.
std::optional<format::Backend> ChooseBackend(const std::string& program, std::string* why);

// Returns the exit code for pagewaste: the program's status, 128+N for a
// signal, 126/127 when it cannot be run, 125 for our own failures.
// *traces (when given) receives the traces the run wrote.
int RunCommand(const RunOptions& options, std::vector<std::string>* traces = nullptr);

struct AttachOptions {
  pid_t pid = 0;
  std::string output_pattern;  // as run's; empty: the default
  double duration_seconds = 0;  // 0: until stopped or the process exits
  uint64_t ring_bytes = 64 << 20;
  uint64_t sample_bytes = 0;  // sample the malloc family (0: every call)
  // How the malloc family is seen: "inject" (the feed library, falling back
  // to uprobes where it cannot load) or "uprobes".
  std::string malloc_calls = "inject";
  bool compress = true;
  bool symbolize = true;
};

// `pagewaste attach PID`: records a running process (and what it forks)
// with the bpf backend from now on, then finishes the traces as run does.
// Returns 0, 127 when there is no such process, 126 when it may not be
// traced (BPF programs cannot be loaded), 125 for our own failures.
int AttachCommand(const AttachOptions& options, std::vector<std::string>* traces = nullptr);

// Where the shim is: $PAGEWASTE_PRELOAD, else beside this executable in the
// build tree or the installed layout. Empty with *searched listing the
// places tried when it is nowhere.
std::string FindShim(std::string* searched);
// The same for attach's allocator feed library ($PAGEWASTE_FEED_LIBRARY).
std::string FindFeedLibrary(std::string* searched);

}  // namespace pagewaste
