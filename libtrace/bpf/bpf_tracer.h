// The bpf backend: traces the memory system calls of a program it starts
// (run), or of a process already running (attach), and of every process
// they fork, with BPF programs (memory_syscalls.bpf.c) instead of stops.
// The program is never stopped. Records arrive through a ring buffer; each
// process image gets a trace of its own, written by a ProcessRecorder as
// under the ptrace backend, so that the two backends' traces of a program
// are the same records. See docs/bpf.md.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ptrace/tracer.h"

namespace pagewaste::bpf {

struct BpfTracerOptions {
  std::vector<std::string> command;  // run: the program to start
  pid_t attach_pid = 0;              // attach: the process (command empty)
  std::string output_pattern;        // absolute; %p and %e as for the shim
  uint64_t session_id = 0;
  // Set in the program's environment before it starts.
  std::vector<std::pair<std::string, std::string>> environment;
  uint64_t ring_bytes = 64 << 20;
  // attach: stop after this long (0: until stopped or the process is gone).
  double duration_seconds = 0;
  // attach: sample the malloc family, one pick per this many bytes
  // requested on average (0: every call).
  uint64_t sample_bytes = 0;
  // attach: the allocator feed's library (inject/feed_library.cpp), loaded
  // into the process to see its malloc family; empty, or where it cannot
  // load: uprobes on its C library.
  std::string feed_library;
};

// Runs and traces the command (or attaches). Returns the program's exit
// status (128+N for signal N), 126/127 when it cannot be started, or -1
// with *err (one line) when tracing itself failed; *started (if given)
// says whether the program was started (or attached to) at all.
int RunUnderBpf(const BpfTracerOptions& options, std::string* err, bool* started = nullptr);

// For the preload backend's supervisor (ptrace/tracer.h): records the
// static images of a dynamic tree (the compilers `go build` starts, a
// static binary a script runs) with the BPF programs, instead of stopping
// them at every system call. A reader thread reads the ring; the
// supervisor hands over each image at its exec stop, stopped there.
class BpfAssistant : public ptrace::StaticImageRecorder {
 public:
  // options: the output pattern, session and ring. The programs load at
  // the first image handed over; where they cannot, it says so once and
  // takes none (the supervisor's stops record them).
  static std::unique_ptr<BpfAssistant> Start(const BpfTracerOptions& options);
  ~BpfAssistant() override;
  bool RecordImage(pid_t pid, pid_t ppid) override;
  void Forget(pid_t pid) override;
  void Stop() override;

 private:
  struct State;
  explicit BpfAssistant(std::unique_ptr<State> state);
  bool Load();
  std::unique_ptr<State> state_;
};

}  // namespace pagewaste::bpf
