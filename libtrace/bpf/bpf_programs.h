// The BPF programs of the bpf backend (memory_syscalls.bpf.c), loaded and
// attached, and the maps userspace shares with them: which processes are
// traced, and the ring buffer their records arrive in.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

struct memory_syscalls;
struct allocator_calls;
struct bpf_link;
struct ring_buffer;

namespace pagewaste::bpf {

// Whether this process can load the programs here; if not, *why says so in
// one line (no BTF, no permission, another pid namespace).
bool CanLoad(std::string* why);

class BpfPrograms {
 public:
  using Handler = std::function<void(const void* record, size_t size)>;

  BpfPrograms() = default;
  ~BpfPrograms();
  BpfPrograms(const BpfPrograms&) = delete;
  BpfPrograms& operator=(const BpfPrograms&) = delete;

  // Loads and attaches the programs with a ring buffer of ring_bytes (a
  // power of two, at least a page); false with *err, one line, if it cannot.
  // A record wakes the reader once more than wakeup_bytes wait.
  bool Load(uint64_t ring_bytes, uint64_t wakeup_bytes, std::string* err);
  // Traces process pid from now (recording) or from its next exec.
  bool Trace(pid_t pid, bool recording);
  // Stops tracing pid; returns the records of it the ring had no room for
  // since the last exit record said.
  uint64_t Forget(pid_t pid);
  // Calls handler for every record waiting, after waiting up to timeout_ms
  // for a wake-up; returns how many, or -1 if the ring cannot be read.
  int Poll(int timeout_ms, const Handler& handler);
  // The same in two steps, for a reader that must not hold its lock while
  // it waits: up to timeout_ms for a wake-up, then every record waiting.
  void Wait(int timeout_ms);
  int Consume(const Handler& handler);
  // The malloc family's probes (attach): loaded once, then put on the C
  // library at libc_path as process pid maps it. False with *err. With
  // sample_bytes, the calls are sampled, one pick per that many bytes
  // requested on average (format.h kFlagSampled).
  bool ProbeAllocator(pid_t pid, const std::string& libc_path, uint64_t sample_bytes,
                      std::string* err);
  // attach's allocator feed: process pid marks its threads inside the
  // malloc family at address (a byte per thread id, bytes of them), for
  // the system calls made there to be charged to the allocator call.
  bool MarkThreads(pid_t pid, uint64_t address, uint64_t bytes);
  // Detaches the programs: nothing more is recorded.
  void Detach();

 private:
  bool LoadAllocatorProbes(uint64_t sample_bytes, std::string* err);
  static int OnRecord(void* context, void* data, size_t size);
  memory_syscalls* skeleton_ = nullptr;
  allocator_calls* allocator_ = nullptr;
  std::map<pid_t, std::vector<bpf_link*>> allocator_links_;  // by process
  ring_buffer* ring_ = nullptr;
  const Handler* handler_ = nullptr;
};

}  // namespace pagewaste::bpf
