// The tracer loop. Each traced process has a trace of its own; its threads
// share it. A memory system call stops twice: at entry (the seccomp stop,
// where the stack is unwound and the arguments read) and at exit (where the
// result is read and the event written). Everything else runs untraced.
#include "tracer.h"

#include <elf.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <set>

#include "../shim/file_sink.h"
#include "../shim/stack_table.h"
#include "elf_headers.h"
#include "proc_maps.h"
#include "record_writer.h"
#include "remote_unwind.h"
#include "seccomp_filter.h"
#include "clock.h"
#include "syscall_kind.h"
#include "usage_estimate.h"

namespace pagewaste::ptrace {
namespace {

using format::SyscallKind;

constexpr uint32_t kFailed = format::kFlagFailed;
constexpr uint32_t kFileBacked = format::kFlagFileBacked;

constexpr size_t kChunk = 256 << 10;
constexpr int kMaxDepth = 64;

uint64_t RealtimeNs() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}





// ET_EXEC: a non-PIE executable.
bool IsFixedAddressExecutable(const std::string& path) {
  ElfHeaders elf;
  return ReadElfHeaders(path, &elf) && elf.file.e_type == ET_EXEC;
}

// One traced process image: its trace file, writer, stacks and modules.
class ProcessTrace {
 public:
  ProcessTrace(pid_t pid, pid_t ppid, const TracerOptions& options)
      : pid_(pid),
        buffer_(kChunk),
        writer_(buffer_.data(), buffer_.size(), &sink_),
        unwinder_(IsFixedAddressExecutable("/proc/" + std::to_string(pid) + "/exe")) {
    std::string exe = ExecutablePath(pid);
    std::string name = exe.substr(exe.rfind('/') + 1);
    ok_ = stacks_.Init() &&
          sink_.Open(options.output_pattern.c_str(), name.c_str(), static_cast<uint32_t>(pid),
                     options.session_id, /*use_mapping=*/true);
    if (!ok_) return;
    start_ns_ = MonotonicNs();
    std::vector<std::string> argv = ReadCmdline(pid);
    std::vector<const char*> argv_ptrs;
    for (const auto& a : argv) argv_ptrs.push_back(a.c_str());
    HeaderInfo h;
    h.process.page_size = static_cast<uint32_t>(sysconf(_SC_PAGESIZE));
    h.process.pid = static_cast<uint32_t>(pid);
    h.process.ppid = static_cast<uint32_t>(ppid);
    h.process.session_id = options.session_id;
    h.process.start_realtime_ns = RealtimeNs();
    h.process.start_monotonic_ns = start_ns_;
    h.process.backend = format::Backend::kPtrace;
    h.exe = exe.c_str();
    h.argc = static_cast<int>(argv_ptrs.size());
    h.argv = argv_ptrs.data();
    std::vector<uint8_t> header(64 << 10);
    size_t n = EncodeHeader(h, header.data(), header.size());
    sink_.WriteRaw(header.data(), n);
    RefreshModules();
  }

  bool ok() const { return ok_; }

  // At a memory system call's entry: what the exit will need.
  struct Entry {
    long nr = 0;
    uint64_t args[6] = {};
    uint64_t stack = 0;
    uint64_t start_ns = 0;
    bool measured = false;  // munmap: usage of the range, taken before it goes
    UsageEstimate usage;
  };

  Entry Enter(pid_t tid, const user_regs_struct& regs) {
    Entry e;
    e.nr = static_cast<long>(regs.orig_rax);
    uint64_t args[6] = {regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9};
    memcpy(e.args, args, sizeof args);
    if (!Known(regs.rip)) RefreshModules();
    uintptr_t ips[kMaxDepth];
    int depth = unwinder_.Unwind(tid, regs, ips, kMaxDepth,
                                 [this](uint64_t ip) { return Known(ip); });
    e.stack = stacks_.Intern(ips, depth, &writer_);
    if (e.nr == SYS_munmap) e.measured = MeasureUsage(e.args[0], e.args[1], &e.usage);
    e.start_ns = MonotonicNs();
    return e;
  }

  void Exit(pid_t tid, const Entry& entry, int64_t result) {
    uint64_t end = MonotonicNs();
    EventPrefix prefix{end - start_ns_, static_cast<uint32_t>(tid), entry.stack};
    SyscallCounts syscalls;
    syscalls.Add(SyscallKindOf(entry.nr));
    syscalls.ns = end - entry.start_ns;
    bool failed = result < 0 && result > -4096;
    const uint64_t* a = entry.args;
    switch (entry.nr) {
      case SYS_mmap: {
        MmapEvent e;
        e.prefix = prefix;
        e.address = failed ? 0 : static_cast<uint64_t>(result);
        e.length = a[1];
        e.prot = static_cast<uint32_t>(a[2]);
        e.map_flags = static_cast<uint32_t>(a[3]);
        e.fd = static_cast<int32_t>(a[4]);
        e.offset = a[5];
        e.flags = (failed ? kFailed : 0) | ((e.map_flags & MAP_ANONYMOUS) ? 0 : kFileBacked);
        e.syscalls = syscalls;
        writer_.Mmap(e);
        if (!failed && (e.map_flags & MAP_ANONYMOUS) && (e.map_flags & MAP_PRIVATE))
          live_[e.address] = e.length;
        if (!failed && (e.prot & 4 /* PROT_EXEC */)) RefreshModules();
        break;
      }
      case SYS_munmap: {
        MunmapEvent e;
        e.prefix = prefix;
        e.address = a[0];
        e.length = a[1];
        e.flags = result != 0 ? kFailed : 0;
        if (entry.measured && result == 0)
          AttachUsage(entry.usage, &e);
        e.syscalls = syscalls;
        writer_.Munmap(e);
        if (result == 0) Forget(a[0], a[1]);
        break;
      }
      case SYS_mremap: {
        MremapEvent e;
        e.prefix = prefix;
        e.old_address = a[0];
        e.old_length = a[1];
        e.new_length = a[2];
        e.mremap_flags = static_cast<uint32_t>(a[3]);
        e.new_address = failed ? 0 : static_cast<uint64_t>(result);
        e.flags = failed ? kFailed : 0;
        e.syscalls = syscalls;
        writer_.Mremap(e);
        if (!failed && live_.erase(a[0])) live_[e.new_address] = e.new_length;
        break;
      }
      case SYS_brk: {
        BrkEvent e;
        e.prefix = prefix;
        e.kind = format::BrkKind::kBrk;
        e.old_break = break_ ? break_ : static_cast<uint64_t>(result);
        e.new_break = static_cast<uint64_t>(result);
        e.argument = static_cast<int64_t>(a[0]);
        // brk returns the current break; asking for another one and getting
        // the old one back is a failure.
        e.flags = a[0] && static_cast<uint64_t>(result) != a[0] ? kFailed : 0;
        e.syscalls = syscalls;
        writer_.Brk(e);
        break_ = static_cast<uint64_t>(result);
        break;
      }
      default: {
        MemoryCallEvent e;
        e.prefix = prefix;
        e.kind = SyscallKindOf(entry.nr);
        e.address = a[0];
        e.length = a[1];
        e.argument = a[2];
        e.flags = result != 0 ? kFailed : 0;
        e.syscalls = syscalls;
        writer_.MemoryCall(e);
      }
    }
  }

  // At the process's exit, before its memory goes: what each private
  // anonymous mapping still there was used for.
  void MeasureLiveMappings(pid_t tid) {
    for (const auto& [address, length] : live_) {
      MunmapEvent e;
      e.prefix = {MonotonicNs() - start_ns_, static_cast<uint32_t>(tid), 0};
      e.address = address;
      e.length = length;
      e.flags = format::kFlagAtExit;
      UsageEstimate usage;
      if (MeasureUsage(address, length, &usage))
        AttachUsage(usage, &e);
      writer_.Munmap(e);
    }
    live_.clear();
  }

  void Finish(format::EndReason reason, int64_t status) {
    if (!ok_ || finished_) return;
    finished_ = true;
    writer_.Flush();
    sink_.StopMapping();
    writer_.End(reason, status, SyscallCounts());
    sink_.Close();
  }

  ~ProcessTrace() {
    Finish(format::EndReason::kDetach, format::kUnknownStatus);
    if (pagemap_ >= 0) close(pagemap_);
  }

 private:
  // Residency from /proc/PID/pagemap: a page is counted when it is present
  // or swapped out (it was made resident once).
  bool MeasureUsage(uint64_t start, uint64_t length, UsageEstimate* usage) {
    uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    if (start % page || length == 0) return false;
    if (pagemap_ < 0) pagemap_ = open(("/proc/" + std::to_string(pid_) + "/pagemap").c_str(), O_RDONLY | O_CLOEXEC);
    if (pagemap_ < 0) return false;
    bool ok = true;
    *usage = EstimateUsage(pid_, start, length, page,
                           [&](uint64_t first, uint64_t count, unsigned char* out) {
                             std::vector<uint64_t> entries(count);
                             off_t at = static_cast<off_t>((start / page + first) * 8);
                             ok = pread(pagemap_, entries.data(), count * 8, at) ==
                                  static_cast<ssize_t>(count * 8);
                             for (uint64_t i = 0; ok && i < count; ++i)
                               out[i] = (entries[i] >> 62) & 3 ? 1 : 0;
                             return ok;
                           });
    return ok;
  }

  // Drops the live mappings inside an unmapped range. (A partial unmap of
  // a mapping keeps it, whole, as live: an estimate at exit, not more.)
  void Forget(uint64_t start, uint64_t length) {
    for (auto it = live_.lower_bound(start); it != live_.end() && it->first < start + length;)
      it = it->first + it->second <= start + length ? live_.erase(it) : std::next(it);
  }

  bool Known(uint64_t ip) const {
    for (const ModuleInfo& m : modules_)
      for (const ModuleSegment& s : m.segments)
        if (ip >= s.start && ip < s.start + s.length) return true;
    return false;
  }

  void RefreshModules() {
    modules_ = ReadModuleMap(pid_);
    writer_.ModuleMap(++generation_);
    for (const ModuleInfo& m : modules_)
      writer_.Module(m.load_bias, m.segments.data(), static_cast<int>(m.segments.size()),
                     m.path.c_str());
    unwinder_.Flush();
  }

  pid_t pid_;
  bool ok_ = false;
  bool finished_ = false;
  uint64_t start_ns_ = 0;
  uint64_t break_ = 0;
  uint64_t generation_ = 0;
  int pagemap_ = -1;
  std::map<uint64_t, uint64_t> live_;  // private anonymous mappings: address -> length
  std::vector<ModuleInfo> modules_;
  shim::FileSink sink_;
  std::vector<uint8_t> buffer_;
  RecordWriter writer_;
  shim::StackTable stacks_;
  RemoteUnwinder unwinder_;
};

pid_t g_root = 0;

void Forward(int sig) {
  if (g_root > 0) kill(g_root, sig);
}

class Tracer {
 public:
  explicit Tracer(const TracerOptions& options) : options_(options) {}

  int Run(std::string* err) {
    int status_pipe[2];
    if (pipe2(status_pipe, O_CLOEXEC) != 0) {
      *err = std::string("pipe: ") + strerror(errno);
      return -1;
    }
    std::vector<char*> argv;
    for (const auto& a : options_.command) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t child = fork();
    if (child < 0) {
      *err = std::string("fork: ") + strerror(errno);
      return -1;
    }
    if (child == 0) {
      close(status_pipe[0]);
      for (const auto& [name, value] : options_.environment) setenv(name.c_str(), value.c_str(), 1);
      ::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr);
      raise(SIGSTOP);  // the tracer sets its options while we wait here
      std::string filter_err;
      int code = 0;
      if (!InstallMemorySyscallFilter(&filter_err)) {
        code = -1;
      } else {
        execvp(argv[0], argv.data());
        code = errno;
      }
      ssize_t ignored = write(status_pipe[1], &code, sizeof code);
      (void)ignored;
      _exit(127);
    }
    close(status_pipe[1]);
    g_root = child;
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    for (int sig : {SIGTERM, SIGHUP, SIGUSR1, SIGUSR2}) signal(sig, Forward);

    int status;
    if (waitpid(child, &status, 0) != child || !WIFSTOPPED(status)) {
      *err = "the program did not stop for the tracer";
      return -1;
    }
    long ptrace_options = PTRACE_O_TRACESECCOMP | PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK |
                          PTRACE_O_TRACEVFORK | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL |
                          PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEEXIT;
    ::ptrace(PTRACE_SETOPTIONS, child, nullptr, reinterpret_cast<void*>(ptrace_options));
    thread_group_[child] = child;
    ::ptrace(PTRACE_CONT, child, nullptr, nullptr);

    int exec_error = 0;
    ssize_t got;
    do {
      got = read(status_pipe[0], &exec_error, sizeof exec_error);
    } while (got < 0 && errno == EINTR);
    close(status_pipe[0]);
    int root_status = Loop(child);
    if (got == sizeof exec_error) {
      if (exec_error == -1) {
        *err = "cannot install the seccomp filter";
        return -1;
      }
      bool missing = exec_error == ENOENT || exec_error == ENOTDIR;
      *err = options_.command[0] + ": " + (missing ? "command not found" : strerror(exec_error));
      return missing ? 127 : 126;
    }
    return root_status;
  }

 private:
  // Returns the root process's exit code.
  int Loop(pid_t root) {
    int root_code = 0;
    for (;;) {
      int status;
      pid_t tid = waitpid(-1, &status, __WALL);
      if (tid < 0) {
        if (errno == EINTR) continue;
        break;  // ECHILD: nothing left to trace
      }
      if (WIFEXITED(status) || WIFSIGNALED(status)) {
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (tid == root) root_code = code;
        Exited(tid, status);
        continue;
      }
      if (!WIFSTOPPED(status)) continue;
      int sig = WSTOPSIG(status);
      int event = status >> 16;
      int inject = 0;
      if (sig == SIGTRAP && event == PTRACE_EVENT_SECCOMP) {
        if (SyscallEntry(tid)) {
          ::ptrace(PTRACE_SYSCALL, tid, nullptr, nullptr);  // stop again at its exit
          continue;
        }
      } else if (sig == (SIGTRAP | 0x80)) {
        SyscallExit(tid);
      } else if (sig == SIGTRAP && (event == PTRACE_EVENT_FORK || event == PTRACE_EVENT_VFORK ||
                                    event == PTRACE_EVENT_CLONE)) {
        unsigned long child = 0;
        ::ptrace(PTRACE_GETEVENTMSG, tid, nullptr, &child);
        NewTracee(static_cast<pid_t>(child), event == PTRACE_EVENT_CLONE);
      } else if (sig == SIGTRAP && event == PTRACE_EVENT_EXEC) {
        Exec(tid);
      } else if (sig == SIGTRAP && event == PTRACE_EVENT_EXIT) {
        // The thread is exiting and its memory is still there. When it is
        // the process's main thread, measure the mappings left.
        auto group = thread_group_.find(tid);
        if (group != thread_group_.end() && group->second == tid) {
          auto it = processes_.find(tid);
          if (it != processes_.end()) it->second->MeasureLiveMappings(tid);
        }
      } else if (sig == SIGSTOP && fresh_.erase(tid)) {
        // A new tracee's first stop.
      } else if (event == 0) {
        // A signal for the program: deliver it, unless this is a group-stop
        // (the process stopped by SIGSTOP/SIGTSTP), which stays stopped.
        siginfo_t info;
        if (::ptrace(PTRACE_GETSIGINFO, tid, nullptr, &info) != 0 && errno == EINVAL) continue;
        inject = sig;
      }
      ::ptrace(PTRACE_CONT, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(inject)));
    }
    processes_.clear();
    return root_code;
  }

  // Every process image gets a trace from its start (the exec, or the fork
  // that made it), whether or not it ever maps memory.
  ProcessTrace* StartTrace(pid_t tgid) {
    auto trace = std::make_unique<ProcessTrace>(tgid, ParentOf(tgid), options_);
    if (!trace->ok()) return nullptr;
    return (processes_[tgid] = std::move(trace)).get();
  }

  ProcessTrace* TraceOf(pid_t tid) {
    auto group = thread_group_.find(tid);
    pid_t tgid = group != thread_group_.end() ? group->second : ThreadGroupOf(tid);
    thread_group_[tid] = tgid;
    auto it = processes_.find(tgid);
    if (it != processes_.end()) return it->second.get();
    // Before the program's first exec, the child is still pagewaste's.
    return started_ ? StartTrace(tgid) : nullptr;
  }

  bool SyscallEntry(pid_t tid) {
    user_regs_struct regs;
    if (::ptrace(PTRACE_GETREGS, tid, nullptr, &regs) != 0) return false;
    if (!IsTracedSyscall(static_cast<long>(regs.orig_rax))) return false;
    if (options_.observe_only) {
      Observe(tid, regs);
      return false;  // counted at entry: no stop at its exit
    }
    ProcessTrace* trace = TraceOf(tid);
    if (!trace) return false;
    pending_[tid] = trace->Enter(tid, regs);
    return true;
  }

  void SyscallExit(pid_t tid) {
    auto it = pending_.find(tid);
    if (it == pending_.end()) return;
    user_regs_struct regs;
    ProcessTrace* trace = TraceOf(tid);
    if (trace && ::ptrace(PTRACE_GETREGS, tid, nullptr, &regs) == 0)
      trace->Exit(tid, it->second, static_cast<int64_t>(regs.rax));
    pending_.erase(it);
  }

  // Observer mode: count between the shim's marks (munmap(&block, 0)), and
  // at the second write the counts into the block.
  void Observe(pid_t tid, const user_regs_struct& regs) {
    auto group = thread_group_.find(tid);
    pid_t tgid = group != thread_group_.end() ? group->second : ThreadGroupOf(tid);
    Observation& o = observations_[tgid];
    bool mark = regs.orig_rax == SYS_munmap && regs.rsi == 0 && regs.rdi != 0;
    int kind = static_cast<int>(SyscallKindOf(static_cast<long>(regs.orig_rax)));
    if (!mark) {
      ++(o.counting ? o.block.counts : o.block.before_start)[kind];
      return;
    }
    if (!o.counting) {
      o.counting = true;  // before_start keeps what the loader did
      return;
    }
    o.block.magic = format::kObservedMagic;
    struct iovec local = {&o.block, sizeof o.block};
    struct iovec remote = {reinterpret_cast<void*>(regs.rdi), sizeof o.block};
    process_vm_writev(tgid, &local, 1, &remote, 1, 0);
    o = Observation{};
  }

  void NewTracee(pid_t child, bool maybe_thread) {
    pid_t group = maybe_thread ? ThreadGroupOf(child) : child;
    thread_group_[child] = group;
    fresh_.insert(child);
    if (group == child && started_ && !options_.observe_only) StartTrace(child);
  }

  void Exec(pid_t tid) {
    pid_t tgid = thread_group_.count(tid) ? thread_group_[tid] : tid;
    auto it = processes_.find(tgid);
    if (it != processes_.end()) {
      it->second->Finish(format::EndReason::kExec, format::kUnknownStatus);
      processes_.erase(it);
    }
    pending_.erase(tid);
    started_ = true;
    observations_.erase(tgid);  // the new image's shim marks its own start
    if (!options_.observe_only) StartTrace(tgid);
  }

  void Exited(pid_t tid, int status) {
    pending_.erase(tid);
    fresh_.erase(tid);
    auto group = thread_group_.find(tid);
    pid_t tgid = group != thread_group_.end() ? group->second : tid;
    thread_group_.erase(tid);
    if (tid != tgid) return;
    auto it = processes_.find(tgid);
    if (it == processes_.end()) return;
    if (WIFEXITED(status))
      it->second->Finish(format::EndReason::kExit, WEXITSTATUS(status));
    else
      it->second->Finish(format::EndReason::kSignal, WTERMSIG(status));
    processes_.erase(it);
  }

  const TracerOptions& options_;
  std::map<pid_t, std::unique_ptr<ProcessTrace>> processes_;  // by thread group
  std::map<pid_t, pid_t> thread_group_;                       // tid -> tgid
  std::map<pid_t, ProcessTrace::Entry> pending_;              // tid -> syscall entry
  std::set<pid_t> fresh_;                                     // not yet stopped once
  bool started_ = false;  // the program's first exec happened
  struct Observation {
    bool counting = false;
    format::ObservedBlock block = {};
  };
  std::map<pid_t, Observation> observations_;  // observer mode, by thread group
};

}  // namespace

int RunUnderPtrace(const TracerOptions& options, std::string* err) {
  Tracer tracer(options);
  return tracer.Run(err);
}

}  // namespace pagewaste::ptrace
