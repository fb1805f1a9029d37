// The ptrace backend: runs a program the preload shim cannot see into
// (statically linked, or set-uid) under ptrace, with a seccomp filter that
// stops only its memory system calls, and writes the same trace format as
// the shim, one file per process. It also supervises the process trees of
// the preload backend (see supervise_preload).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace pagewaste::ptrace {

// What records the static images of a supervised tree instead of the
// tracer's stops at every system call (the bpf backend's BpfAssistant).
class StaticImageRecorder {
 public:
  virtual ~StaticImageRecorder() = default;
  // pid, stopped at the exec of a static image, is recorded from now on
  // (and what it forks); false if it cannot be.
  virtual bool RecordImage(pid_t pid, pid_t ppid) = 0;
  // pid exec'd an image it does not record (the shim's): its trace ends.
  virtual void Forget(pid_t pid) = 0;
  // Every trace ends (detach): recording stops.
  virtual void Stop() = 0;
};

struct TracerOptions {
  std::vector<std::string> command;
  std::string output_pattern;  // absolute; %p and %e as for the shim
  uint64_t session_id = 0;
  // Set in the program's environment before it starts.
  std::vector<std::pair<std::string, std::string>> environment;
  // Supervisor mode, for the preload backend: the program starts with the
  // shim (environment holds LD_PRELOAD) and no seccomp filter. The tracer
  // follows the tree at full speed (it stops only at forks, execs, signals
  // and exits) and records, with a stop at every system call, the images
  // the shim cannot see: static programs, and programs whose environment
  // lost LD_PRELOAD. It also ends the trace of a shim-traced process that
  // left with a raw exit system call (trace_completion.h). shim_path tells
  // the shim in an environment's LD_PRELOAD.
  bool supervise_preload = false;
  std::string shim_path;
  // Supervising: the static images go to it, not to syscall stops (null:
  // the tracer records them itself).
  StaticImageRecorder* static_images = nullptr;
  // Observer mode, beside the preload shim: write no trace, only count each
  // process's memory system calls between the shim's two marks and hand the
  // counts over (format.h's handshake). One stop per call, at its entry.
  bool observe_only = false;
};

// Runs and traces the command. Returns the program's exit status (128+N
// for signal N), 126/127 when it cannot be started, or -1 with *err when
// tracing itself failed.
int RunUnderPtrace(const TracerOptions& options, std::string* err);

}  // namespace pagewaste::ptrace
