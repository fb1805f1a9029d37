// See bpf_tracer.h. The loop reads the ring buffer, and between reads looks
// at what only userspace knows: the exit of the program it started, a stop
// signal, the end of --duration, processes gone without an exit record.
//
// Records of one thread arrive in the order its calls ended; records of a
// process's threads in the order the kernel put them in the ring, which is
// the order they were made. A record is handled when it is read, after the
// fact: what /proc says then may be newer than the record, so a forked
// process takes its image from its parent's recorder, not from /proc, and a
// process gone keeps the module map last read.
#include "bpf_tracer.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "allocator_records.h"
#include "bpf_events.h"
#include "bpf_programs.h"
#include "ring_records.h"
#include "format/clock.h"
#include "inject/feed_reader.h"
#include "inject/injector.h"
#include "ptrace/held_child.h"
#include "ptrace/proc_maps.h"
#include "ptrace/process_recorder.h"
#include "ptrace/stop_signals.h"
#include "format/syscall_kind.h"

static_assert(pagewaste::inject::kMarkAllocator == PW_MARK_ALLOCATOR &&
              pagewaste::inject::kMarkOwn == PW_MARK_OWN);

namespace pagewaste::bpf {
namespace {

using ptrace::ProcessRecorder;

bool Gone(pid_t pid) { return kill(pid, 0) != 0 && errno == ESRCH; }

class BpfTracer {
 public:
  explicit BpfTracer(const BpfTracerOptions& options)
      : options_(options),
        allocator_records_([this](pid_t tgid) { return RecorderOf(tgid); },
                           options.sample_bytes) {
    recorder_options_.output_pattern = options.output_pattern;
    recorder_options_.session_id = options.session_id;
    recorder_options_.backend = format::Backend::kBpf;
  }

  bool started() const { return started_; }

  // The assistant's side (BpfAssistant): the programs loaded, no program
  // started; images come from the supervisor, a record of an exec only
  // ends the image before.
  bool Prepare(std::string* err) {
    std::string why;
    if (!CanLoad(&why)) {
      *err = why;
      return false;
    }
    assisting_ = true;
    return programs_.Load(options_.ring_bytes, WakeupBytes(), err);
  }
  bool RecordImage(pid_t pid, pid_t ppid) {
    Drain();  // its exec's record first: it ends the image before
    if (stopped_by_ || !programs_.Trace(pid, /*recording=*/true)) return false;
    parents_[pid] = ppid;
    StartRecorder(pid, ppid, ptrace::ReadProcessImage(pid));
    if (recorders_.count(pid)) return true;
    programs_.Forget(pid);
    return false;
  }
  void ForgetImage(pid_t pid) {
    Drain();
    auto it = recorders_.find(pid);
    if (it != recorders_.end()) {
      it->second->RecordLost(programs_.Forget(pid));
      it->second->Finish(format::EndReason::kExec, format::kUnknownStatus);
      recorders_.erase(it);
    } else {
      programs_.Forget(pid);
    }
  }
  // The reader thread's step: waits for records (without the caller's
  // lock), then reads them under it.
  void Wait() { programs_.Wait(kPollMs); }
  void ReadWaiting() {
    BpfPrograms::Handler handler = [this](const void* record, size_t size) {
      Handle(record, size);
    };
    programs_.Consume(handler);
    uint64_t now = MonotonicNs();
    if (now - last_gone_check_ > 1000000000) {
      last_gone_check_ = now;
      FinishGone();
    }
  }
  void StopAll() {
    if (!stopped_by_) StopRecording(kStopRequested);
  }

  int Run(std::string* err) {
    std::string why;
    if (!CanLoad(&why)) {
      *err = "the bpf backend cannot run here: " + why;
      return -1;
    }
    if (options_.attach_pid) return Attach(err);
    if (!programs_.Load(options_.ring_bytes, WakeupBytes(), err)) return -1;
    ptrace::HeldChild held;
    if (!held.Fork(options_.command, options_.environment, nullptr, err)) return -1;
    started_ = true;
    pid_t child = held.pid();
    ptrace::WatchStopSignals(child);
    // Recording starts at its exec.
    held.Release(programs_.Trace(child, /*recording=*/false) ? 1 : 0);
    parents_[child] = getpid();
    int exec_error = 0;
    if (held.ExecFailed(&exec_error)) {
      int status;
      while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
      }
      if (exec_error == -1) {
        *err = "cannot trace the program (the BPF map of traced processes is full)";
        return -1;
      }
      bool missing = exec_error == ENOENT || exec_error == ENOTDIR;
      *err = options_.command[0] + ": " + (missing ? "command not found" : strerror(exec_error));
      return missing ? 127 : 126;
    }
    int code = Loop(child);
    if (stopped_by_ > 0)
      fprintf(stderr, "pagewaste: %s: stopped recording; the traces end here (detach)\n",
              strsignal(stopped_by_));
    return code;
  }

 private:
  // A record wakes the reader once this much waits, or a quarter of the
  // ring (else poll's timeout reads it): a wake-up per record would cost
  // more than the record.
  static constexpr uint64_t kWakeupBytes = 1 << 20;
  static constexpr int kPollMs = 50;
  // With an allocator feed, the feed is read this often at least.
  static constexpr int kFeedPollMs = 5;
  uint64_t WakeupBytes() const {
    return options_.ring_bytes / 4 < kWakeupBytes ? options_.ring_bytes / 4 : kWakeupBytes;
  }

  // attach: the process and what it forks from now on, until a stop
  // signal, the duration's end or the process's exit. The process is never
  // stopped; what it did before is not in the trace (format.h
  // kHeaderAttached).
  int Attach(std::string* err) {
    pid_t pid = options_.attach_pid;
    ptrace::ProcessImage image = ptrace::ReadProcessImage(pid);
    if (image.exe.empty()) {
      *err = "no process " + std::to_string(pid);
      return 127;
    }
    if (!programs_.Load(options_.ring_bytes, WakeupBytes(), err)) return -1;
    recorder_options_.attached = true;
    recorder_options_.sample_bytes = options_.sample_bytes;
    // The trace first, so that no record finds it missing.
    StartRecorder(pid, ptrace::ParentOf(pid), std::move(image));
    if (recorders_.empty()) {
      *err = "cannot create the trace of pid " + std::to_string(pid);
      return -1;
    }
    // The feed first: the system calls the injection makes are not the
    // program's.
    if (!options_.feed_library.empty()) StartFeed(pid, recorders_.begin()->second->image());
    if (!programs_.Trace(pid, /*recording=*/true)) {
      *err = "cannot trace pid " + std::to_string(pid) + " (the BPF map of traced processes)";
      return -1;
    }
    started_ = true;
    if (!feed_) ProbeAllocator(pid, recorders_.begin()->second->image());
    ptrace::WatchStopSignals(0);  // the process is not ours to signal
    std::string exe = recorders_.begin()->second->image().exe;
    std::string until = options_.duration_seconds > 0
                            ? " for " + FormatSeconds(options_.duration_seconds) + " s,"
                            : "";
    fprintf(stderr, "pagewaste: attached to %d (%s): recording%s until Ctrl-C, SIGTERM or its "
            "exit\n", pid, exe.substr(exe.rfind('/') + 1).c_str(), until.c_str());
    uint64_t deadline = options_.duration_seconds > 0
                            ? MonotonicNs() + static_cast<uint64_t>(options_.duration_seconds * 1e9)
                            : 0;
    Loop(0, deadline);
    if (stopped_by_ && stopped_by_ != kStopRequested)
      fprintf(stderr, "pagewaste: %s: detached from %d; the traces end here\n",
              strsignal(stopped_by_), pid);
    else if (stopped_by_)
      fprintf(stderr, "pagewaste: detached from %d after %s s\n", pid,
              FormatSeconds(options_.duration_seconds).c_str());
    return 0;
  }

  static std::string FormatSeconds(double seconds) {
    char text[32];
    snprintf(text, sizeof text, "%g", seconds);
    return text;
  }

  // stopped_by_ when recording stopped without a signal: attach's
  // --duration, or the supervisor (0 is no stop).
  static constexpr int kStopRequested = -1;

  // Returns the root's exit code (run), or -1 (attach: root 0).
  int Loop(pid_t root, uint64_t deadline = 0) {
    int root_code = -1;
    uint64_t last_check = MonotonicNs();
    BpfPrograms::Handler handler = [this](const void* record, size_t size) {
      Handle(record, size);
    };
    for (;;) {
      if (ptrace::StopSignalReceived() && !stopped_by_) StopRecording(ptrace::StopSignalReceived());
      if (deadline && !stopped_by_ && MonotonicNs() >= deadline) StopRecording(kStopRequested);
      if (!root && recorders_.empty()) break;  // attach: everything traced is gone
      if (programs_.Poll(feed_ ? kFeedPollMs : kPollMs, handler) < 0) {
        fprintf(stderr, "pagewaste: cannot read the BPF ring buffer: recording stops\n");
        StopRecording(SIGTERM);
      }
      if (feed_) ReadFeed();
      // A stop signal during the wait ends the traces before anything
      // else: the program it was passed on to may be gone already.
      if (ptrace::StopSignalReceived() && !stopped_by_) StopRecording(ptrace::StopSignalReceived());
      if (root && root_code < 0) {
        int status;
        pid_t r = waitpid(root, &status, WNOHANG);
        if (r == root) root_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      uint64_t now = MonotonicNs();
      if (root_code >= 0 || now - last_check > 1000000000) {
        last_check = now;
        FinishGone();
        if (root_code >= 0 && recorders_.empty()) break;
      }
    }
    return root_code;
  }

  // With an allocator feed, the ring's records wait (held_) to be handled
  // in time order with the feed's (ReadFeed).
  void Handle(const void* data, size_t size) {
    if (feed_ && size >= sizeof(pw_event_header)) {
      held_.emplace_back(static_cast<const char*>(data), size);
      return;
    }
    HandleNow(data, size);
  }

  void HandleNow(const void* data, size_t size) {
    if (size < sizeof(pw_event_header)) return;
    pw_event_header header;
    memcpy(&header, data, sizeof header);
    if (header.size > size) return;
    // After a stop signal (passed on to the program, which may die of it
    // at once): not in the traces, which end there, as the ptrace
    // backend's do.
    uint64_t stopped_at = ptrace::StopSignalTimeNs();
    if (stopped_at && header.time_ns >= stopped_at) return;
    switch (header.kind) {
      case PW_EVENT_SYSCALL: return Syscall(data, size);
      case PW_EVENT_FORK:
        if (size >= sizeof(pw_fork_event)) {
          pw_fork_event e;
          memcpy(&e, data, sizeof e);
          Fork(static_cast<pid_t>(e.header.tgid), static_cast<pid_t>(e.child));
        }
        return;
      case PW_EVENT_EXEC:
        if (size >= sizeof(pw_exec_event)) {
          const auto* e = static_cast<const pw_exec_event*>(data);
          std::string filename(e->filename, strnlen(e->filename, sizeof e->filename));
          Exec(static_cast<pid_t>(e->header.tgid), filename, e->start_code);
        }
        return;
      case PW_EVENT_ALLOC: return allocator_records_.Allocation(data, size);
      case PW_EVENT_FREE:
        if (size >= sizeof(pw_free_event)) {
          pw_free_event e;
          memcpy(&e, data, sizeof e);
          allocator_records_.Free(e.header, format::FreeKind::kFree, e.address, e.chunk);
        }
        return;
      case PW_EVENT_EXIT:
        if (size >= sizeof(pw_exit_event)) {
          pw_exit_event e;
          memcpy(&e, data, sizeof e);
          Exit(static_cast<pid_t>(e.header.tgid), e.header.time_ns,
               static_cast<int>(e.exit_code), e.lost_events);
        }
        return;
    }
  }

  void Syscall(const void* data, size_t size) {
    const auto* e = static_cast<const pw_syscall_event*>(data);
    size_t fixed = sizeof *e - sizeof e->frames;
    if (size < fixed) return;
    ProcessRecorder* recorder = RecorderOf(static_cast<pid_t>(e->header.tgid));
    if (!recorder) return;
    if (e->flags & PW_IN_ALLOCATOR) {
      // The allocator's, for the call in progress: charged to its block.
      allocator_records_.AllocatorSyscall(static_cast<pid_t>(e->header.tid), e->header.time_ns,
                                          e->nr, e->kernel_ns);
      return;
    }
    RingSyscall ring(*e, size);
    if (e->flags & PW_CHAIN_CUT) recorder->CountStackCut();
    recorder->RecordCall(static_cast<pid_t>(e->header.tid), e->header.time_ns, ring.call,
                         ring.stack);
  }

  // ---- attach's allocator feed (inject/) ----

  // Loads the feed library into the process; where it cannot, says why,
  // and the uprobes see the malloc family instead.
  void StartFeed(pid_t pid, const ptrace::ProcessImage& image) {
    inject::FeedRequest request;
    request.pid = pid;
    request.library = options_.feed_library;
    request.ring_bytes = options_.ring_bytes;
    request.sample_bytes = options_.sample_bytes;
    std::string err;
    int fd = -1;
    if (!AddLibraries(image, &request))
      err = "it maps no C library";
    else
      fd = inject::InjectFeed(request, &err);
    if (fd >= 0) {
      auto feed = std::make_unique<inject::FeedReader>(fd);
      if (feed->ok() &&
          programs_.MarkThreads(pid, feed->thread_marks(), feed->thread_marks_bytes()))
        feed_ = std::move(feed);
      else
        err = "cannot map the feed";
    }
    if (!feed_)
      fprintf(stderr, "pagewaste: cannot load the allocator feed into %d (%s): its malloc calls "
              "are seen through uprobes, at a far higher cost per call\n", pid, err.c_str());
    else if (feed_->unredirected_call_sites())
      fprintf(stderr, "pagewaste: %d: %u of its call sites of the malloc family are not seen "
              "(the feed's table holds %u)\n", pid, feed_->unredirected_call_sites(),
              feed_->redirected_call_sites());
  }

  // The feed's records and the ring's, stamped more than kFeedLagNs ago,
  // in the order of their times: a system call an allocator call made is
  // then handled before the call's record, which takes it, and every
  // process's records are in the trace in the order they happened. (A
  // record is in the ring within microseconds of its call, but the ring is
  // read in order, and one CPU's record still being written holds back
  // the others'.) ~0: everything there is.
  static constexpr uint64_t kFeedLagNs = 10000000;
  void ReadFeed(uint64_t until_ns = 0) {
    if (!until_ns) until_ns = MonotonicNs() - kFeedLagNs;
    Drain();
    auto time_of = [](const std::string& record) {
      pw_event_header header;
      memcpy(&header, record.data(), sizeof header);
      return header.time_ns;
    };
    auto handle_held_until = [&](uint64_t time_ns) {
      while (!held_.empty() && time_of(held_.front()) <= time_ns) {
        std::string record = std::move(held_.front());
        held_.pop_front();
        HandleNow(record.data(), record.size());
      }
    };
    feed_->Read(until_ns, [&](const inject::FeedRecord& r) {
      handle_held_until(r.time_ns);
      uint64_t stopped_at = ptrace::StopSignalTimeNs();
      if (!stopped_at || r.time_ns < stopped_at) allocator_records_.Feed(r);
    });
    handle_held_until(until_ns == ~uint64_t{0} ? until_ns : until_ns - 1);
  }

  // The feed's lost records, charged once, to the process attached to.
  uint64_t FeedLost(pid_t pid) {
    if (!feed_ || pid != options_.attach_pid || feed_lost_taken_) return 0;
    feed_lost_taken_ = true;
    return feed_->lost();
  }

  ProcessRecorder* RecorderOf(pid_t tgid) {
    auto it = recorders_.find(tgid);
    return it != recorders_.end() ? it->second.get() : nullptr;
  }

  void StartRecorder(pid_t pid, pid_t ppid, ptrace::ProcessImage image) {
    if (stopped_by_) return;
    auto recorder =
        std::make_unique<ProcessRecorder>(pid, ppid, recorder_options_, std::move(image));
    if (!recorder->ok()) {
      fprintf(stderr, "pagewaste: cannot create the trace of pid %d under %s (%s); not recording it\n",
              pid, recorder_options_.output_pattern.c_str(), strerror(errno));
      return;
    }
    recorders_[pid] = std::move(recorder);
  }

  // The child runs its parent's image until it execs.
  void Fork(pid_t parent, pid_t child) {
    parents_[child] = parent;
    if (ProcessRecorder* p = RecorderOf(parent)) {
      StartRecorder(child, parent, p->image());
      // A child forked with the feed's hooks in place keeps them, and
      // writes to the same feed.
      if (feed_)
        programs_.MarkThreads(child, feed_->thread_marks(), feed_->thread_marks_bytes());
      else if (options_.attach_pid)
        ProbeAllocator(child, p->image());
    }
  }

  // attach: the malloc family's probes on the C library the process maps.
  // A probe is the process's own (it follows the address space): a child
  // gets its own once its fork is read, and its calls before are not seen.
  void ProbeAllocator(pid_t pid, const ptrace::ProcessImage& image) {
    const ModuleInfo* module = LibcOf(image);
    std::string libc = module ? module->path : std::string();
    if (libc.empty()) {
      fprintf(stderr, "pagewaste: %d maps no C library (statically linked?): its malloc calls "
              "are not seen, its memory system calls are\n", pid);
      return;
    }
    std::string err;
    if (!programs_.ProbeAllocator(pid, libc, options_.sample_bytes, &err))
      fprintf(stderr, "pagewaste: %d: %s; its malloc calls are not seen\n", pid, err.c_str());
  }

  // A process that exits at once may be gone before its exec record is
  // read: its image is then the file exec was given, placed where the
  // kernel put its code.
  void Exec(pid_t pid, const std::string& filename, uint64_t start_code) {
    if (ProcessRecorder* old = RecorderOf(pid)) {
      old->Finish(format::EndReason::kExec, format::kUnknownStatus);
      recorders_.erase(pid);
    }
    if (assisting_) return;  // the supervisor says whether the new image is ours
    ptrace::ProcessImage image = ptrace::ReadProcessImage(pid);
    if (image.exe.empty()) {
      std::error_code ignored;
      image.exe = std::filesystem::absolute(filename, ignored).string();
      image.argv = {filename};
    }
    if (image.modules.empty()) image.modules = ptrace::ExecutableModuleMap(image.exe, start_code);
    auto parent = parents_.find(pid);
    StartRecorder(pid, parent != parents_.end() ? parent->second : ptrace::ParentOf(pid),
                  std::move(image));
  }

  void Exit(pid_t pid, uint64_t time_ns, int wait_status, uint64_t lost) {
    parents_.erase(pid);
    auto it = recorders_.find(pid);
    if (it == recorders_.end()) return;
    ProcessRecorder& r = *it->second;
    r.RecordLost(lost + FeedLost(pid));
    r.RecordLiveMappingsUnmeasured(time_ns);
    if (WIFSIGNALED(wait_status))
      r.Finish(format::EndReason::kSignal, WTERMSIG(wait_status));
    else
      r.Finish(format::EndReason::kExit, WEXITSTATUS(wait_status));
    recorders_.erase(it);
  }

  // Processes gone without an exit record (the ring had no room for it):
  // their traces end, with what the ring lost of them.
  void FinishGone() {
    // A process gone after a stop signal died of it, past the traces' end.
    if (ptrace::StopSignalReceived() && !stopped_by_) StopRecording(ptrace::StopSignalReceived());
    for (auto it = recorders_.begin(); it != recorders_.end();) {
      pid_t pid = it->first;
      if (!Gone(pid)) {
        ++it;
        continue;
      }
      // Read what is left first: the exit record may be waiting.
      BpfPrograms::Handler handler = [this](const void* record, size_t size) {
        Handle(record, size);
      };
      programs_.Poll(0, handler);
      it = recorders_.find(pid);
      if (it == recorders_.end()) {
        it = recorders_.upper_bound(pid);
        continue;
      }
      if (feed_) {
        ReadFeed(~uint64_t{0});
        it = recorders_.find(pid);
        if (it == recorders_.end()) {
          it = recorders_.upper_bound(pid);
          continue;
        }
      }
      it->second->RecordLost(programs_.Forget(pid) + 1 + FeedLost(pid));  // its exit, at least
      it->second->Finish(format::EndReason::kDetach, format::kUnknownStatus);
      it = recorders_.erase(it);
    }
  }

  // SIGINT or SIGTERM (or attach's --duration): every trace ends now
  // (reason detach); the programs are detached, and the program runs on
  // untouched.
  void StopRecording(int sig) {
    stopped_by_ = sig;
    if (feed_) feed_->Detach();
    programs_.Detach();
    // What the programs put in the ring before they went is recorded.
    BpfPrograms::Handler handler = [this](const void* record, size_t size) {
      Handle(record, size);
    };
    while (programs_.Poll(0, handler) > 0) {
    }
    if (feed_) ReadFeed(~uint64_t{0});
    for (auto& [pid, r] : recorders_) {
      r->RecordLost(programs_.Forget(pid) + FeedLost(pid));
      r->Finish(format::EndReason::kDetach, format::kUnknownStatus);
    }
    recorders_.clear();
  }

  const BpfTracerOptions& options_;
  ptrace::RecorderOptions recorder_options_;
  BpfPrograms programs_;
  std::map<pid_t, std::unique_ptr<ProcessRecorder>> recorders_;  // by process
  std::map<pid_t, pid_t> parents_;  // each traced process's parent
  // By thread: the system calls of its allocator call in progress.
  AllocatorRecords allocator_records_;
  std::unique_ptr<inject::FeedReader> feed_;  // attach: the injected feed, if it loaded
  std::deque<std::string> held_;              // the ring's records, with a feed
  bool feed_lost_taken_ = false;
  int stopped_by_ = 0;
  bool started_ = false;
  bool assisting_ = false;
  uint64_t last_gone_check_ = 0;

  void Drain() {
    BpfPrograms::Handler handler = [this](const void* record, size_t size) {
      Handle(record, size);
    };
    while (programs_.Consume(handler) > 0) {
    }
  }
};

}  // namespace

struct BpfAssistant::State {
  explicit State(const BpfTracerOptions& o) : options(o), tracer(options) {}
  BpfTracerOptions options;
  BpfTracer tracer;
  std::mutex mutex;  // the tracer's, between the reader and the supervisor
  bool loaded = false, failed = false;
  std::atomic<bool> stop{false};
  std::thread reader;
};

std::unique_ptr<BpfAssistant> BpfAssistant::Start(const BpfTracerOptions& options) {
  return std::unique_ptr<BpfAssistant>(new BpfAssistant(std::make_unique<State>(options)));
}

BpfAssistant::BpfAssistant(std::unique_ptr<State> state) : state_(std::move(state)) {}

BpfAssistant::~BpfAssistant() { Stop(); }

// The programs load at the first static image: a tree without one pays
// nothing for them.
bool BpfAssistant::Load() {
  if (state_->loaded || state_->failed) return state_->loaded;
  std::string err;
  if (!state_->tracer.Prepare(&err)) {
    state_->failed = true;
    fprintf(stderr, "pagewaste: the static programs of the tree are traced with ptrace (not "
            "BPF: %s)\n", err.c_str());
    return false;
  }
  state_->loaded = true;
  State* s = state_.get();
  state_->reader = std::thread([s] {
    while (!s->stop) {
      s->tracer.Wait();
      std::lock_guard<std::mutex> lock(s->mutex);
      if (!s->stop) s->tracer.ReadWaiting();
    }
  });
  return true;
}

bool BpfAssistant::RecordImage(pid_t pid, pid_t ppid) {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return Load() && state_->tracer.RecordImage(pid, ppid);
}

void BpfAssistant::Forget(pid_t pid) {
  std::lock_guard<std::mutex> lock(state_->mutex);
  if (state_->loaded) state_->tracer.ForgetImage(pid);
}

void BpfAssistant::Stop() {
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    if (state_->loaded) state_->tracer.StopAll();
    state_->stop = true;
  }
  if (state_->reader.joinable()) state_->reader.join();
}

int RunUnderBpf(const BpfTracerOptions& options, std::string* err, bool* started) {
  BpfTracer tracer(options);
  int code = tracer.Run(err);
  if (started) *started = tracer.started();
  return code;
}

}  // namespace pagewaste::bpf
