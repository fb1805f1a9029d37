// One traced process image under the ptrace backend: its trace file (the
// producer library's, as the shim's), its module map, and the memory system
// calls its threads make, read from their registers. The tracer loop (tracer.cpp) decides when
// a recorder starts and ends; the recorder only records.
#pragma once

#include <sys/types.h>
#include <sys/user.h>

#include <cstdint>
#include <map>
#include <unordered_map>
#include <memory>
#include <string>
#include <vector>

#include "format/format.h"
#include "producer/trace_file.h"
#include "remote_unwind.h"
#include "reader/trace_reader.h"
#include "format/usage_estimate.h"

namespace pagewaste::ptrace {

struct RecorderOptions {
  std::string output_pattern;  // absolute; %p and %e as for the shim
  uint64_t session_id = 0;
  format::Backend backend = format::Backend::kPtrace;
  // The process was running before tracing started (attach).
  bool attached = false;
  // The malloc family is sampled, one pick per this many bytes (attach).
  uint64_t sample_bytes = 0;
};

// What a process image is: its executable, command line and module map.
struct ProcessImage {
  std::string exe;
  std::vector<std::string> argv;
  std::vector<ModuleInfo> modules;
};
// pid's, from /proc (empty fields if it is gone).
ProcessImage ReadProcessImage(pid_t pid);

class ProcessRecorder {
 public:
  // Reads the image from /proc: the process is stopped, or the image is
  // what it runs now.
  ProcessRecorder(pid_t pid, pid_t ppid, const RecorderOptions& options)
      : ProcessRecorder(pid, ppid, options, ReadProcessImage(pid)) {}
  ProcessRecorder(pid_t pid, pid_t ppid, const RecorderOptions& options, ProcessImage image);
  ~ProcessRecorder();
  ProcessRecorder(const ProcessRecorder&) = delete;
  ProcessRecorder& operator=(const ProcessRecorder&) = delete;

  bool ok() const { return ok_; }
  const ProcessImage& image() const { return image_; }
  const char* path() const { return trace_->path(); }

  // At a memory system call's entry: what the exit will need.
  struct Entry {
    long nr = 0;
    uint64_t args[6] = {};
    uint64_t stack = 0;
    uint64_t start_ns = 0;
    uint64_t start_cpu_ns = 0;  // the thread's CPU time so far; 0: unknown
    bool measured = false;  // munmap: usage of the range, taken before it goes
    UsageEstimate usage;
  };

  // Thread tid stopped at the entry of a memory system call.
  Entry Enter(pid_t tid, const user_regs_struct& regs);
  // The same call's exit, with its result: writes the event.
  void Exit(pid_t tid, const Entry& entry, int64_t result);
  // A call the bpf backend saw whole, at time_ns (CLOCK_MONOTONIC), with
  // the stack its BPF program read. brk's old break is the recorder's.
  void RecordCall(pid_t tid, uint64_t time_ns, producer::MemorySyscall call,
                  const RecordedStack& stack);
  // A block a malloc-family call handed out (attach), with the stack at
  // its return, and the system calls the call made.
  void RecordAllocation(pid_t tid, uint64_t time_ns, AllocEvent e, const RecordedStack& stack);
  // The same with the stack already walked (attach's injected feed):
  // depth return addresses, innermost first.
  void RecordAllocation(pid_t tid, uint64_t time_ns, AllocEvent e, const uint64_t* ips,
                        int depth);
  // A block given back (no stack: the report charges a free to its block's
  // site).
  void RecordFree(pid_t tid, uint64_t time_ns, FreeEvent e);
  // At the process's exit, before its memory goes: what each private
  // anonymous mapping still there was used for.
  void MeasureLiveMappings(pid_t tid);
  // The bpf backend, at the process's exit, after its memory went: each
  // mapping still there, unmeasured.
  void RecordLiveMappingsUnmeasured(uint64_t time_ns);
  // Events that happened and could not be recorded (a full ring buffer).
  void RecordLost(uint64_t events);
  // A stack the producer cut at the depth it follows: counted, and written
  // at the end (format.h kStacksCut).
  void CountStackCut() { ++stacks_cut_; }
  // Writes the End record and closes the trace; later calls do nothing.
  void Finish(format::EndReason reason, int64_t status);

 private:
  bool MeasureUsage(uint64_t start, uint64_t length, UsageEstimate* usage);
  // The CPU time thread tid has run (ns), from its schedstat; 0 where the
  // kernel keeps none.
  uint64_t ThreadCpuNs(pid_t tid);
  bool Known(uint64_t ip) const;
  void RefreshModules();
  void WriteModules();
  void Write(pid_t tid, uint64_t time_ns, uint64_t stack, producer::MemorySyscall call);

  pid_t pid_;
  bool ok_ = false;
  bool finished_ = false;
  uint64_t start_ns_ = 0;
  uint64_t break_ = 0;
  uint64_t generation_ = 0;
  uint64_t stacks_cut_ = 0;
  int pagemap_ = -1;
  std::unordered_map<pid_t, int> schedstat_;  // by thread: /proc/PID/task/TID/schedstat
  ProcessImage image_;  // image_.modules: the module map as last read
  std::map<std::string, std::string> build_ids_;  // by path, read once
  std::unique_ptr<producer::TraceFile> trace_;  // 400 KiB: on the heap
  RemoteUnwinder unwinder_;
};

}  // namespace pagewaste::ptrace
