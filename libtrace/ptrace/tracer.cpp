// The tracer loop. Each traced process image has a recorder of its own
// (process_recorder.h); its threads share it. A memory system call stops
// twice: at entry (the seccomp stop, where the stack is unwound and the
// arguments read) and at exit (where the result is read and the event
// written). Everything else runs untraced.
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

#include "process_recorder.h"
#include "proc_maps.h"
#include "seccomp_filter.h"
#include "syscall_kind.h"

namespace pagewaste::ptrace {
namespace {

pid_t g_root = 0;
volatile sig_atomic_t g_stop_signal = 0;

// SIGINT, SIGTERM: stop recording (the loop sees the flag when waitpid is
// interrupted). A signal sent to pagewaste alone is passed on; a terminal's
// reached the program already.
void OnStopSignal(int sig, siginfo_t* info, void*) {
  if (g_root > 0 && (info->si_code == SI_USER || info->si_code == SI_QUEUE)) kill(g_root, sig);
  g_stop_signal = sig;
}

void Forward(int sig) {
  if (g_root > 0) kill(g_root, sig);
}

void InstallSignalHandlers() {
  struct sigaction stop = {};
  stop.sa_sigaction = OnStopSignal;
  stop.sa_flags = SA_SIGINFO;  // no SA_RESTART: waitpid returns EINTR
  sigemptyset(&stop.sa_mask);
  sigaction(SIGINT, &stop, nullptr);
  sigaction(SIGTERM, &stop, nullptr);
  signal(SIGQUIT, SIG_IGN);
  for (int sig : {SIGHUP, SIGUSR1, SIGUSR2}) signal(sig, Forward);
}

bool IsStoppingSignal(int sig) {
  return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
}

class Tracer {
 public:
  explicit Tracer(const TracerOptions& options) : options_(options) {
    recorder_options_.output_pattern = options.output_pattern;
    recorder_options_.session_id = options.session_id;
  }

  int Run(std::string* err) {
    int go_pipe[2], status_pipe[2];
    if (pipe2(go_pipe, O_CLOEXEC) != 0 || pipe2(status_pipe, O_CLOEXEC) != 0) {
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
      close(go_pipe[1]);
      close(status_pipe[0]);
      for (const auto& [name, value] : options_.environment) setenv(name.c_str(), value.c_str(), 1);
      // Wait until the tracer has seized us: the filter's stops need it.
      char go = 0;
      while (read(go_pipe[0], &go, 1) < 0 && errno == EINTR) {
      }
      int code = 0;
      std::string filter_err;
      if (go != 1 || !InstallMemorySyscallFilter(&filter_err)) {
        code = -1;
      } else {
        execvp(argv[0], argv.data());
        code = errno;
      }
      ssize_t ignored = write(status_pipe[1], &code, sizeof code);
      (void)ignored;
      _exit(127);
    }
    close(go_pipe[0]);
    close(status_pipe[1]);
    g_root = child;
    InstallSignalHandlers();

    long ptrace_options = PTRACE_O_TRACESECCOMP | PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK |
                          PTRACE_O_TRACEVFORK | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL |
                          PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEEXIT;
    char go = ::ptrace(PTRACE_SEIZE, child, nullptr, reinterpret_cast<void*>(ptrace_options)) == 0;
    int seize_errno = errno;
    ssize_t ignored = write(go_pipe[1], &go, 1);
    (void)ignored;
    close(go_pipe[1]);
    if (!go) {
      int status;
      waitpid(child, &status, 0);
      *err = std::string("cannot trace the program (ptrace: ") + strerror(seize_errno) + ")";
      return -1;
    }
    threads_[child].tgid = child;

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
    if (stopped_by_) {
      fprintf(stderr, "pagewaste: %s: stopped recording; the traces end here (detach)\n",
              strsignal(stopped_by_));
    }
    return root_status;
  }

 private:
  struct Thread {
    pid_t tgid = 0;
    bool in_syscall = false;  // between a recorded call's entry and exit
    ProcessRecorder::Entry entry;
  };

  // Returns the root process's exit code.
  int Loop(pid_t root) {
    int root_code = 0;
    for (;;) {
      if (g_stop_signal && !stopped_by_) StopRecording(g_stop_signal);
      int status;
      pid_t tid = waitpid(-1, &status, __WALL);
      if (tid < 0) {
        if (errno == EINTR) continue;
        break;  // ECHILD: nothing left to trace
      }
      if (WIFEXITED(status) || WIFSIGNALED(status)) {
        if (tid == root) root_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        Exited(tid, status);
      } else if (WIFSTOPPED(status)) {
        Stopped(tid, status);
      }
    }
    processes_.clear();
    return root_code;
  }

  // Every stop ends in exactly one restart: PTRACE_CONT (with the signal
  // to deliver), PTRACE_SYSCALL (to stop at a recorded call's exit), or
  // PTRACE_LISTEN (a group-stop).
  void Stopped(pid_t tid, int status) {
    int sig = WSTOPSIG(status);
    int event = status >> 16;
    auto known = threads_.find(tid);
    if (known == threads_.end()) {
      // A thread or process we have not seen: its attach stop.
      Thread& t = threads_[tid];
      t.tgid = ThreadGroupOf(tid);
      if (t.tgid == tid) StartProcess(tid);
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
      if (SyscallEntry(tid, &t)) {
        ::ptrace(PTRACE_SYSCALL, tid, nullptr, nullptr);  // stop again at its exit
        return;
      }
    } else if (sig == (SIGTRAP | 0x80)) {
      SyscallExit(tid, &t);
    } else if (sig == SIGTRAP && (event == PTRACE_EVENT_FORK || event == PTRACE_EVENT_VFORK ||
                                  event == PTRACE_EVENT_CLONE)) {
      unsigned long message = 0;
      ::ptrace(PTRACE_GETEVENTMSG, tid, nullptr, &message);
      NewChild(static_cast<pid_t>(message), event != PTRACE_EVENT_CLONE);
    } else if (sig == SIGTRAP && event == PTRACE_EVENT_EXEC) {
      Exec(tid);
    } else if (sig == SIGTRAP && event == PTRACE_EVENT_EXIT) {
      // The thread is exiting and its memory is still there. When it is
      // the process's main thread, measure the mappings left.
      if (t.tgid == tid) {
        auto it = processes_.find(tid);
        if (it != processes_.end()) it->second->MeasureLiveMappings(tid);
      }
    } else if (event == 0) {
      Resume(tid, sig);  // a signal for the program: deliver it
      return;
    }
    Resume(tid, 0);
  }

  // The child's own attach stop may come before or after its parent's
  // event; its trace starts at whichever comes first. When the attach stop
  // came first, the child has run since and may be gone: what we learnt
  // then is what counts, not /proc now.
  void NewChild(pid_t child, bool process) {
    auto known = threads_.find(child);
    if (known != threads_.end()) return;  // seen at its attach stop
    if (!process) {
      pid_t tgid = ThreadGroupOf(child);
      if (tgid != child || ExecutablePath(child).empty()) return;  // a thread, or gone
    }
    StartProcess(child);
  }

  void Resume(pid_t tid, int sig) {
    ::ptrace(PTRACE_CONT, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(sig)));
  }

  // Every process image gets a trace from its start (the exec, or the fork
  // that made it), whether or not it ever maps memory.
  void StartProcess(pid_t tgid) {
    if (!started_ || stopped_by_ || options_.observe_only || processes_.count(tgid)) return;
    auto recorder = std::make_unique<ProcessRecorder>(tgid, ParentOf(tgid), recorder_options_);
    if (recorder->ok()) {
      processes_[tgid] = std::move(recorder);
    } else {
      fprintf(stderr, "pagewaste: cannot create the trace of pid %d under %s (%s); not recording it\n",
              tgid, recorder_options_.output_pattern.c_str(), strerror(errno));
    }
  }

  ProcessRecorder* RecorderOf(const Thread& t) {
    auto it = processes_.find(t.tgid);
    return it != processes_.end() ? it->second.get() : nullptr;
  }

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

  void SyscallExit(pid_t tid, Thread* t) {
    if (!t->in_syscall) return;
    t->in_syscall = false;
    user_regs_struct regs;
    ProcessRecorder* recorder = RecorderOf(*t);
    if (recorder && ::ptrace(PTRACE_GETREGS, tid, nullptr, &regs) == 0)
      recorder->Exit(tid, t->entry, static_cast<int64_t>(regs.rax));
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
    auto it = processes_.find(tgid);
    if (it != processes_.end()) {
      it->second->Finish(format::EndReason::kExec, format::kUnknownStatus);
      processes_.erase(it);
    }
    started_ = true;
    observations_.erase(tgid);  // the new image's shim marks its own start
    StartProcess(tgid);
  }

  void Exited(pid_t tid, int status) {
    auto known = threads_.find(tid);
    pid_t tgid = known != threads_.end() ? known->second.tgid : tid;
    if (known != threads_.end()) threads_.erase(known);
    if (tid != tgid) return;
    auto it = processes_.find(tgid);
    if (it == processes_.end()) return;
    if (WIFEXITED(status))
      it->second->Finish(format::EndReason::kExit, WEXITSTATUS(status));
    else
      it->second->Finish(format::EndReason::kSignal, WTERMSIG(status));
    processes_.erase(it);
  }

  // SIGINT or SIGTERM: finish every trace now; the program runs on with
  // every stop let through (see the top of the file).
  void StopRecording(int sig) {
    stopped_by_ = sig;
    for (auto& [tgid, recorder] : processes_)
      recorder->Finish(format::EndReason::kDetach, format::kUnknownStatus);
    processes_.clear();
    for (auto& [tid, t] : threads_) t.in_syscall = false;
  }

  const TracerOptions& options_;
  RecorderOptions recorder_options_;
  std::map<pid_t, std::unique_ptr<ProcessRecorder>> processes_;  // by thread group
  std::map<pid_t, Thread> threads_;                              // every tracee we have seen
  bool started_ = false;  // the program's first exec happened
  int stopped_by_ = 0;    // the signal that ended recording
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
