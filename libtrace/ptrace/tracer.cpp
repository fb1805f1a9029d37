// The tracer loop. Each process image it records has a recorder of its own
// (process_recorder.h); its threads share it. How an image is recorded
// (Recording, below) depends on how the tree was started:
//  - the ptrace backend installs a seccomp filter before the program's first
//    exec, inherited by everything it starts: a memory system call stops
//    twice, at entry (the seccomp stop, where the stack is unwound and the
//    arguments read) and at exit (where the result is read and the event
//    written); everything else runs untraced;
//  - supervising the preload backend, nothing carries a filter: the shim
//    records the dynamic images, and the tracer only follows the tree (forks,
//    execs, signals and exits stop; nothing else does) until an image the
//    shim cannot see starts (a static program, or one whose environment lost
//    LD_PRELOAD). That one is stopped at every system call, its memory ones
//    recorded as above, as if `run` had started it with the ptrace backend.
//
// Never leaving a tracee stopped is what keeps a process tree from hanging,
// so the loop is built on PTRACE_SEIZE rather than PTRACE_TRACEME:
//  - a new thread or process (auto-attached through TRACECLONE/FORK/VFORK)
//    reports PTRACE_EVENT_STOP first, and that stop is told by the thread
//    being new, not by the parent's fork event having arrived before it
//    (under TRACEME the child's SIGSTOP could come first and was then
//    delivered to it as a signal: the whole forked process stopped for good);
//  - a group-stop (SIGSTOP, SIGTSTP, ...) reports PTRACE_EVENT_STOP with the
//    stopping signal and is left stopped with PTRACE_LISTEN, so that a later
//    SIGCONT or SIGKILL still reaches the tracer;
//  - every other stop is resumed at once, the signal it carries delivered.
//
// SIGINT and SIGTERM sent to pagewaste end recording, not the program: every
// trace is finished (End reason detach) and the signal is passed on to the
// program when it was sent to pagewaste alone (the terminal's SIGINT reaches
// the program through the process group already). The tracer then lets
// every stop through unrecorded until the program is gone: a seccomp filter
// cannot be removed, and with no tracer its memory system calls would fail
// with ENOSYS, so detaching for real would break the program.
#include "tracer.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "elf/elf_headers.h"
#include "held_child.h"
#include "proc_maps.h"
#include "process_recorder.h"
#include "seccomp_filter.h"
#include "stop_signals.h"
#include "format/syscall_kind.h"
#include "rewrite/trace_completion.h"

namespace pagewaste::ptrace {
namespace {

bool IsStoppingSignal(int sig) {
  return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
}

// How the tracer records a process image.
enum class Recording {
  kSeccomp,       // carries the memory system call filter: recorded at its stops
  kSyscallStops,  // no filter: stopped at every system call, memory ones recorded
  kShim,          // the preload shim records it; the tracer only follows it
  kStaticImages,  // options.static_images records it (BPF); the tracer only follows it
  kNone,          // not recorded: recording stopped
};

bool Records(Recording r) { return r == Recording::kSeccomp || r == Recording::kSyscallStops; }

class Tracer {
 public:
  explicit Tracer(const TracerOptions& options) : options_(options) {
    recorder_options_.output_pattern = options.output_pattern;
    recorder_options_.session_id = options.session_id;
  }

  int Run(std::string* err) {
    HeldChild held;
    // The filter goes in once the tracer has seized the child: its stops
    // need it.
    std::string filter_err;
    auto install_filter = [this, &filter_err] {
      return options_.supervise_preload || InstallMemorySyscallFilter(&filter_err);
    };
    if (!held.Fork(options_.command, options_.environment, install_filter, err)) return -1;
    pid_t child = held.pid();
    WatchStopSignals(child);

    long ptrace_options = PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK |
                          PTRACE_O_TRACEEXEC | PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEEXIT;
    // A filtered program cannot live without its tracer (its memory system
    // calls would fail): it goes with pagewaste. A supervised one carries no
    // filter of ours and is let go; nor does it ask for seccomp stops, so
    // that a filter of the program's own that returns SECCOMP_RET_TRACE
    // fails its calls with ENOSYS, as it does without pagewaste.
    if (!options_.supervise_preload) ptrace_options |= PTRACE_O_EXITKILL | PTRACE_O_TRACESECCOMP;
    bool seized =
        ::ptrace(PTRACE_SEIZE, child, nullptr, reinterpret_cast<void*>(ptrace_options)) == 0;
    int seize_errno = errno;
    // 1: traced; 2: supervision failed, run it with the shim alone.
    held.Release(seized ? 1 : options_.supervise_preload ? 2 : 0);
    if (!seized && !options_.supervise_preload) {
      int status;
      waitpid(child, &status, 0);
      *err = std::string("cannot trace the program (ptrace: ") + strerror(seize_errno) + ")";
      return -1;
    }
    if (!seized) {
      fprintf(stderr,
              "pagewaste: cannot follow the process tree (ptrace: %s): static programs it "
              "starts will not be traced\n",
              strerror(seize_errno));
    }
    threads_[child].tgid = child;
    processes_[child].recording =
        options_.supervise_preload ? Recording::kShim : Recording::kSeccomp;

    int exec_error = 0;
    bool exec_failed = held.ExecFailed(&exec_error);
    int root_status = Loop(child);
    if (exec_failed) {
      if (exec_error == -1) {
        *err = "cannot install the seccomp filter";
        return -1;
      }
      bool missing = exec_error == ENOENT || exec_error == ENOTDIR;
      *err = options_.command[0] + ": " + (missing ? "command not found" : strerror(exec_error));
      return missing ? 127 : 126;
    }
    if (stopped_by_) {
      fprintf(stderr, "pagewaste: %s: stopped recording; the traces end here (detach)\n",
              strsignal(stopped_by_));
    }
    CompleteShimTraces();
    return root_status;
  }

 private:
  struct Thread {
    pid_t tgid = 0;
    bool in_syscall = false;  // between a recorded call's entry and exit
    ProcessRecorder::Entry entry = {};
  };
  struct Process {
    Recording recording = Recording::kNone;
    std::unique_ptr<ProcessRecorder> recorder;
    std::string shim_trace;  // kShim: the shim's trace, found at the exit stop
    SyscallCounts observed, observed_before_start;  // observer mode, at the exit stop
  };

  // Returns the root process's exit code.
  int Loop(pid_t root) {
    int root_code = 0;
    for (;;) {
      if (StopSignalReceived() && !stopped_by_) StopRecording(StopSignalReceived());
      int status;
      pid_t tid = waitpid(-1, &status, __WALL);
      if (tid < 0) {
        if (errno == EINTR) continue;
        break;  // ECHILD: nothing left to trace
      }
      if (WIFEXITED(status) || WIFSIGNALED(status)) {
        if (tid == root) root_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        Exited(tid, status);
        if (tid == root && options_.supervise_preload) {
          LetGo();
          break;
        }
      } else if (WIFSTOPPED(status)) {
        Stopped(tid, status);
      }
    }
    processes_.clear();
    return root_code;
  }

  // Every stop ends in exactly one restart: PTRACE_CONT or PTRACE_SYSCALL
  // (with the signal to deliver), or PTRACE_LISTEN (a group-stop).
  void Stopped(pid_t tid, int status) {
    int sig = WSTOPSIG(status);
    int event = status >> 16;
    auto known = threads_.find(tid);
    if (known == threads_.end()) {
      // A thread or process we have not seen: its attach stop.
      Thread& t = threads_[tid];
      t.tgid = ThreadGroupOf(tid);
      if (t.tgid == tid) NewProcess(tid, RecordingOf(ParentOf(tid)));
      Resume(tid, 0);
      return;
    }
    Thread& t = known->second;
    if (event == PTRACE_EVENT_STOP) {
      if (IsStoppingSignal(sig)) {
        ::ptrace(PTRACE_LISTEN, tid, nullptr, nullptr);
        return;
      }
      Resume(tid, 0);  // the end of a listen, or an interrupt
      return;
    }
    if (sig == SIGTRAP && event == PTRACE_EVENT_SECCOMP) {
      if (RecordingOf(t.tgid) == Recording::kSeccomp && SyscallEntry(tid, &t)) {
        ::ptrace(PTRACE_SYSCALL, tid, nullptr, nullptr);  // stop again at its exit
        return;
      }
    } else if (sig == (SIGTRAP | 0x80)) {
      SyscallStop(tid, &t);
    } else if (sig == SIGTRAP && (event == PTRACE_EVENT_FORK || event == PTRACE_EVENT_VFORK ||
                                  event == PTRACE_EVENT_CLONE)) {
      unsigned long message = 0;
      ::ptrace(PTRACE_GETEVENTMSG, tid, nullptr, &message);
      NewChild(static_cast<pid_t>(message), event != PTRACE_EVENT_CLONE, t.tgid);
    } else if (sig == SIGTRAP && event == PTRACE_EVENT_EXEC) {
      Exec(tid);
    } else if (sig == SIGTRAP && event == PTRACE_EVENT_EXIT) {
      if (t.tgid == tid) ExitStop(tid);
    } else if (event == 0) {
      Resume(tid, sig);  // a signal for the program: deliver it
      return;
    }
    Resume(tid, 0);
  }

  Recording RecordingOf(pid_t tgid) const {
    auto it = processes_.find(tgid);
    return it != processes_.end() ? it->second.recording : Recording::kNone;
  }

  void Resume(pid_t tid, int sig) {
    auto t = threads_.find(tid);
    bool every_call = t != threads_.end() && RecordingOf(t->second.tgid) == Recording::kSyscallStops;
    ::ptrace(every_call ? PTRACE_SYSCALL : PTRACE_CONT, tid, nullptr,
             reinterpret_cast<void*>(static_cast<long>(sig)));
  }

  // The child's own attach stop may come before or after its parent's
  // event; its process starts at whichever comes first. When the attach stop
  // came first, the child has run since and may be gone: what we learnt
  // then is what counts, not /proc now.
  void NewChild(pid_t child, bool process, pid_t parent) {
    if (threads_.count(child)) return;  // seen at its attach stop
    if (!process) {
      pid_t tgid = ThreadGroupOf(child);
      if (tgid != child || ExecutablePath(child).empty()) return;  // a thread, or gone
    }
    NewProcess(child, RecordingOf(parent));
  }

  // A forked process is recorded as its parent was; a recorded one gets its
  // trace from its start, whether or not it ever maps memory.
  void NewProcess(pid_t tgid, Recording inherited) {
    if (processes_.count(tgid)) return;
    Process& p = processes_[tgid];
    p.recording = inherited;
    if (Records(inherited)) StartRecorder(tgid, &p);
  }

  void StartRecorder(pid_t tgid, Process* p) {
    if (!started_ || stopped_by_ || options_.observe_only) return;
    auto recorder = std::make_unique<ProcessRecorder>(tgid, ParentOf(tgid), recorder_options_);
    if (recorder->ok()) {
      p->recorder = std::move(recorder);
    } else {
      fprintf(stderr, "pagewaste: cannot create the trace of pid %d under %s (%s); not recording it\n",
              tgid, recorder_options_.output_pattern.c_str(), strerror(errno));
    }
  }

  ProcessRecorder* RecorderOf(const Thread& t) {
    auto it = processes_.find(t.tgid);
    return it != processes_.end() ? it->second.recorder.get() : nullptr;
  }

  // At a seccomp stop. Returns whether to stop again at the call's exit.
  bool SyscallEntry(pid_t tid, Thread* t) {
    user_regs_struct regs;
    if (::ptrace(PTRACE_GETREGS, tid, nullptr, &regs) != 0) return false;
    if (!IsTracedSyscall(static_cast<long>(regs.orig_rax))) return false;
    if (options_.observe_only) {
      Observe(t->tgid, regs);
      return false;  // counted at entry: no stop at its exit
    }
    ProcessRecorder* recorder = RecorderOf(*t);
    if (!recorder) return false;  // before the program's first exec, or after recording stopped
    t->entry = recorder->Enter(tid, regs);
    t->in_syscall = true;
    return true;
  }

  // A system call stop (PTRACE_SYSCALL): the exit of a recorded call; in a
  // kSyscallStops process also the entry and exit of every other call.
  void SyscallStop(pid_t tid, Thread* t) {
    struct __ptrace_syscall_info info;
    if (::ptrace(PTRACE_GET_SYSCALL_INFO, tid, sizeof info, &info) <= 0) return;
    if (info.op == PTRACE_SYSCALL_INFO_ENTRY) {
      if (RecordingOf(t->tgid) == Recording::kSyscallStops) SyscallEntry(tid, t);
      return;
    }
    if (info.op != PTRACE_SYSCALL_INFO_EXIT || !t->in_syscall) return;
    t->in_syscall = false;
    if (ProcessRecorder* recorder = RecorderOf(*t))
      recorder->Exit(tid, t->entry, static_cast<int64_t>(info.exit.rval));
  }

  // Observer mode: count between the shim's marks (munmap(&block, 0)), and
  // at the second write the counts into the block.
  void Observe(pid_t tgid, const user_regs_struct& regs) {
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

  // How a newly exec'd image is recorded. A filter, once installed, stays;
  // without one, the shim records what it is preloaded into, and the tracer
  // the rest.
  Recording RecordingForImage(pid_t pid, Recording before) {
    if (before == Recording::kSeccomp || before == Recording::kNone) return before;
    if (stopped_by_) return Recording::kNone;
    std::string exe = "/proc/" + std::to_string(pid) + "/exe";
    // In secure mode the loader ignores LD_PRELOAD as run sets it.
    if (HasInterpreter(exe) && PreloadsShim(pid, options_.shim_path) && !RunsInSecureMode(pid))
      return Recording::kShim;
    return Recording::kSyscallStops;
  }

  // An exec reports with the thread group's id, whichever thread called it;
  // the caller's old id is gone (the kernel reports no exit for it).
  void Exec(pid_t tgid) {
    unsigned long former = 0;
    if (::ptrace(PTRACE_GETEVENTMSG, tgid, nullptr, &former) == 0 &&
        static_cast<pid_t>(former) != tgid)
      threads_.erase(static_cast<pid_t>(former));
    Thread& t = threads_[tgid];
    t.tgid = tgid;
    t.in_syscall = false;
    Process& p = processes_[tgid];
    if (p.recorder) {
      p.recorder->Finish(format::EndReason::kExec, format::kUnknownStatus);
      p.recorder.reset();
    }
    p.shim_trace.clear();
    started_ = true;
    observations_.erase(tgid);  // the new image's shim marks its own start
    if (RefusedForPrivileges(tgid)) {
      p.recording = Recording::kNone;
      return;
    }
    Recording before = p.recording;
    p.recording = RecordingForImage(tgid, p.recording);
    if (p.recording == Recording::kSyscallStops && options_.static_images &&
        options_.static_images->RecordImage(tgid, ParentOf(tgid)))
      p.recording = Recording::kStaticImages;
    else if (before == Recording::kStaticImages && p.recording != Recording::kStaticImages)
      options_.static_images->Forget(tgid);
    if (Records(p.recording)) StartRecorder(tgid, &p);
  }

  // A set-uid, set-gid or capability-granting program exec'd inside the
  // traced tree gets its privileges only when we may trace it with them (the
  // kernel's rule for any traced process, and no filter installed under
  // PR_SET_NO_NEW_PRIVS). Without them it would run as someone it is not
  // meant to: it is killed here, at its exec stop, before its first
  // instruction, and named.
  bool RefusedForPrivileges(pid_t pid) {
    std::string withheld = PrivilegesWithheld(pid);
    if (withheld.empty()) return false;
    std::string exe = ExecutablePath(pid);
    kill(pid, SIGKILL);
    fprintf(stderr,
            "pagewaste: pid %d: %s is %s, which a traced process gets only when pagewaste runs "
            "as root: killed before it ran\n",
            pid, exe.c_str(), withheld.c_str());
    return true;
  }

  // The process's main thread is exiting, its memory and files still there.
  void ExitStop(pid_t tgid) {
    auto it = processes_.find(tgid);
    if (it == processes_.end()) return;
    Process& p = it->second;
    if (p.recorder) p.recorder->MeasureLiveMappings(tgid);
    // The shim's trace, in case the process is leaving without it knowing
    // (an exit system call of its own): its file is still open. An
    // observer's counts so far go with it, for its End record.
    if ((p.recording == Recording::kShim && options_.supervise_preload) ||
        options_.observe_only) {
      p.shim_trace = FindOpenTrace(tgid, options_.session_id);
      auto observed = observations_.find(tgid);
      if (observed != observations_.end() && observed->second.counting) {
        format::ObservedBlock block = observed->second.block;
        block.magic = format::kObservedMagic;  // counted so far: as the shim's End would take it
        ObservedCounts(block, &p.observed, &p.observed_before_start);
      }
    }
  }

  void Exited(pid_t tid, int status) {
    auto known = threads_.find(tid);
    pid_t tgid = known != threads_.end() ? known->second.tgid : tid;
    if (known != threads_.end()) threads_.erase(known);
    if (tid != tgid) return;
    auto it = processes_.find(tgid);
    if (it == processes_.end()) return;
    Process& p = it->second;
    if (p.recorder) {
      if (WIFEXITED(status))
        p.recorder->Finish(format::EndReason::kExit, WEXITSTATUS(status));
      else
        p.recorder->Finish(format::EndReason::kSignal, WTERMSIG(status));
    }
    // A process killed by a signal keeps its trace as the shim left it:
    // truncated is what it is.
    if (!p.shim_trace.empty() && WIFEXITED(status))
      shim_exits_.push_back(
          {p.shim_trace, WEXITSTATUS(status), p.observed, p.observed_before_start});
    processes_.erase(it);
  }

  // After the tree is gone: the End record of each shim trace whose process
  // exited without writing it.
  void CompleteShimTraces() {
    for (const ShimExit& e : shim_exits_) {
      std::string why;
      if (CompleteTrace(e.trace, e.status, &why, e.observed, e.before_start) ==
          Completion::kNotCompletable)
        fprintf(stderr, "pagewaste: %s: left without an end record: %s\n", e.trace.c_str(),
                why.c_str());
    }
  }

  // Supervising, when the program has exited: what it left running (a
  // daemon, a background job) goes on untraced, as it would under the shim
  // alone, instead of run waiting for it. The tracer's own traces end here
  // (reason detach); each process is interrupted and detached, a signal on
  // its way to it passed on, a group-stop left stopped.
  void LetGo() {
    if (options_.static_images) options_.static_images->Stop();
    std::set<pid_t> left;
    for (auto& [tgid, p] : processes_) {
      if (p.recorder) p.recorder->Finish(format::EndReason::kDetach, format::kUnknownStatus);
      left.insert(tgid);
    }
    if (!left.empty())
      fprintf(stderr, "pagewaste: %s exited; the %zu process%s it left running go%s on untraced\n",
              options_.command[0].c_str(), left.size(), left.size() == 1 ? "" : "es",
              left.size() == 1 ? "es" : "");
    std::set<pid_t> waiting;
    for (const auto& [tid, t] : threads_)
      if (::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) == 0) waiting.insert(tid);
    while (!waiting.empty()) {
      int status;
      pid_t tid = waitpid(-1, &status, __WALL);
      if (tid < 0) {
        if (errno == EINTR) continue;
        break;
      }
      waiting.erase(tid);
      if (!WIFSTOPPED(status)) continue;
      int sig = WSTOPSIG(status);
      bool to_deliver = (status >> 16) == 0 && sig != (SIGTRAP | 0x80);
      ::ptrace(PTRACE_DETACH, tid, nullptr,
               reinterpret_cast<void*>(static_cast<long>(to_deliver ? sig : 0)));
    }
  }

  // SIGINT or SIGTERM: finish every trace now; the program runs on with
  // every stop let through (see the top of the file).
  void StopRecording(int sig) {
    stopped_by_ = sig;
    if (options_.static_images) options_.static_images->Stop();
    for (auto& [tgid, p] : processes_) {
      if (p.recorder) p.recorder->Finish(format::EndReason::kDetach, format::kUnknownStatus);
      p.recorder.reset();
      if (p.recording == Recording::kSyscallStops) p.recording = Recording::kNone;
    }
    for (auto& [tid, t] : threads_) t.in_syscall = false;
  }

  const TracerOptions& options_;
  RecorderOptions recorder_options_;
  std::map<pid_t, Process> processes_;  // by thread group
  std::map<pid_t, Thread> threads_;     // every tracee we have seen
  bool started_ = false;  // the program's first exec happened
  int stopped_by_ = 0;    // the signal that ended recording
  // The shim traces of processes that left without ending them.
  struct ShimExit {
    std::string trace;
    int status;
    SyscallCounts observed, before_start;  // an observer's counts, if any
  };
  std::vector<ShimExit> shim_exits_;
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
