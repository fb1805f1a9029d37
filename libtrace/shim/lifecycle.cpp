// Starting and ending a trace, whatever way the process goes: initialization
// on the first hooked call or our constructor (whichever comes first), a new
// trace in a forked child, an End record before exec, on exit, _exit and
// fatal signals.
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/auxv.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "clock.h"
#include "fast_unwind.h"
#include "real_functions.h"
#include "syscall_dispatch.h"
#include "trace_state.h"
#include "tracker.h"

namespace pagewaste::shim {

constinit TraceState g_state;

namespace {

constexpr const char* kDefaultPattern = "pagewaste.%e.%p.trace";

// argv from /proc/self/cmdline: our constructor may run before main has
// argv, and a lazy start from a library constructor certainly does.
char g_cmdline[8192];
const char* g_argv[256];
int g_argc = 0;

void Say(const char* a, const char* b = "", const char* c = "") {
  // stderr through write(): stdio could allocate.
  const char* parts[] = {"pagewaste: ", a, b, c, "\n"};
  for (const char* p : parts) {
    ssize_t ignored = write(2, p, strlen(p));
    (void)ignored;
  }
}

void ReadProcessIdentity(TraceState* s) {
  ssize_t n = readlink("/proc/self/exe", s->exe_path, sizeof s->exe_path - 1);
  s->exe_path[n > 0 ? n : 0] = 0;
  const char* slash = strrchr(s->exe_path, '/');
  s->exe_name = slash ? slash + 1 : s->exe_path;

  int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  ssize_t len = 0;
  if (fd >= 0) {
    ssize_t r;
    while (len < static_cast<ssize_t>(sizeof g_cmdline) - 1 &&
           (r = read(fd, g_cmdline + len, sizeof g_cmdline - 1 - len)) > 0)
      len += r;
    close(fd);
  }
  g_cmdline[len] = 0;
  g_argc = 0;
  for (ssize_t i = 0; i < len && g_argc < 256;) {
    g_argv[g_argc++] = g_cmdline + i;
    i += static_cast<ssize_t>(strlen(g_cmdline + i)) + 1;
  }
}

// The kernel's start_brk (field 47 of /proc/self/stat): where the brk heap
// begins. 0 if it cannot be read.
uint64_t ReadHeapStart() {
  char stat[2048];
  int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, stat, sizeof stat - 1);
  close(fd);
  if (n <= 0) return 0;
  stat[n] = 0;
  // Fields count from after the command name, which may hold spaces: the
  // space after ')' begins field 3.
  const char* p = strrchr(stat, ')');
  if (!p) return 0;
  ++p;
  int field = 2;
  while (*p && field < 47) {
    if (*p == ' ') ++field;
    ++p;
  }
  uint64_t value = 0;
  for (; *p >= '0' && *p <= '9'; ++p) value = value * 10 + static_cast<uint64_t>(*p - '0');
  return value;
}

uint64_t ParseHex(const char* s) {
  uint64_t v = 0;
  for (; *s; ++s) {
    int d = (*s >= '0' && *s <= '9')   ? *s - '0'
            : (*s >= 'a' && *s <= 'f') ? *s - 'a' + 10
            : (*s >= 'A' && *s <= 'F') ? *s - 'A' + 10
                                       : -1;
    if (d < 0) break;
    v = v * 16 + static_cast<uint64_t>(d);
  }
  return v;
}

// Signals whose default action ends the process. We flush on them only where
// the program left the default in place; a program that installs its own
// handler later simply replaces ours.
constexpr int kFatalSignals[] = {SIGHUP,  SIGINT,  SIGQUIT, SIGILL,  SIGTRAP,
                                 SIGABRT, SIGBUS,  SIGFPE,  SIGSEGV, SIGUSR1,
                                 SIGUSR2, SIGPIPE, SIGALRM, SIGTERM, SIGXCPU,
                                 SIGXFSZ, SIGVTALRM, SIGPROF};

void OnFatalSignal(int sig) {
  int saved = errno;
  Finalize(format::EndReason::kSignal, sig);
  // Back to the default action and deliver it again: the signal is blocked
  // while we run, so it arrives (and ends the process) once we return; a
  // fault re-executes the faulting instruction and gets the default action.
  signal(sig, SIG_DFL);
  raise(sig);
  errno = saved;
}

void InstallFatalSignalHandlers() {
  for (int sig : kFatalSignals) {
    struct sigaction old;
    if (sigaction(sig, nullptr, &old) != 0 || old.sa_handler != SIG_DFL ||
        (old.sa_flags & SA_SIGINFO))
      continue;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = OnFatalSignal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(sig, &sa, nullptr);
  }
}

void BeforeFork() {
  if (g_state.mode.load() == TraceMode::kTracing) g_state.lock.Lock(CurrentTid());
}

void AfterForkParent() {
  if (g_state.mode.load() == TraceMode::kTracing) g_state.lock.Unlock();
}

void AfterForkChild() {
  TraceState& s = g_state;
  if (s.mode.load() != TraceMode::kTracing) return;
  uint32_t ppid = s.pid;
  s.pid = static_cast<uint32_t>(getpid());
  // The parent's unwritten records are the parent's; the child starts a
  // trace of its own, with the stacks interned so far written again so that
  // ids stay valid.
  s.writer.Reset();
  s.sink.Abandon();
  for (auto& count : s.shim_syscalls) count.store(0);  // the child's trace starts now
  if (!s.sink.Open(s.pattern, s.exe_name, s.pid, s.session_id, s.use_mapping)) {
    Say("cannot create a trace file for forked child; not tracing it");
    s.mode.store(TraceMode::kDisabled);
  } else {
    s.observed = format::ObservedBlock{};
    MarkForObserver();
    WriteTracePreamble(ppid);
  }
  s.lock.Unlock();
}

__attribute__((constructor)) void StartEarly() {
  Scope scope;  // initializes if no hooked call has yet
}

__attribute__((destructor)) void StopLate() {
  Finalize(format::EndReason::kExit, g_state.exit_status.load());
}

}  // namespace

void WriteTracePreamble(uint32_t ppid) {
  TraceState& s = g_state;
  struct timespec real_time;
  clock_gettime(CLOCK_REALTIME, &real_time);
  HeaderInfo h;
  h.process.page_size = s.page_size;
  h.process.pid = s.pid;
  h.process.ppid = ppid;
  h.process.session_id = s.session_id;
  h.process.start_realtime_ns = static_cast<uint64_t>(real_time.tv_sec) * 1000000000ull +
                        static_cast<uint64_t>(real_time.tv_nsec);
  h.process.start_monotonic_ns = s.start_monotonic_ns;
  h.process.backend = format::Backend::kPreload;
  h.process.time_resolution_ns = s.time_resolution_ns;
  h.process.sample_interval_bytes = s.sample_interval;
  h.exe = s.exe_path;
  h.argc = g_argc;
  h.argv = g_argv;
  // The header is at most path + argv; the chunk buffer is idle here.
  size_t n = EncodeHeader(h, s.buffer, sizeof s.buffer);
  s.sink.WriteRaw(s.buffer, n);
  WriteModuleMap(&s.writer, ++s.module_generation, s.exe_path);
  s.stacks.Replay(&s.writer);
}

void Initialize() {
  TraceState& s = g_state;
  TraceMode expected = TraceMode::kUninitialized;
  if (!s.mode.compare_exchange_strong(expected, TraceMode::kInitializing))
    return;
  // A set-uid or otherwise privileged exec (AT_SECURE): its environment is
  // the unprivileged caller's, so nothing in it may choose what this process
  // writes, or where. Such a process is not traced (the loader preloads into
  // it only from a system directory anyway); the getenv calls below are
  // secure_getenv for the same reason.
  if (getauxval(AT_SECURE)) {
    s.mode.store(TraceMode::kDisabled);
    return;
  }
  const char* missing = nullptr;
  if (!ResolveRealFunctions(&missing)) {
    Say("cannot find ", missing, "; not tracing");
    s.mode.store(TraceMode::kDisabled);
    return;
  }
  Dl_info info;
  s.glibc_malloc = dladdr(reinterpret_cast<void*>(real.malloc), &info) &&
                   info.dli_fname && strstr(info.dli_fname, "libc.so");
  s.page_size = static_cast<uint32_t>(sysconf(_SC_PAGESIZE));
  s.pid = static_cast<uint32_t>(getpid());
  s.start_monotonic_ns = CoarseMonotonicNs();
  s.time_resolution_ns = CoarseResolutionNs();
  const char* pattern = secure_getenv("PAGEWASTE_OUTPUT");
  s.pattern = pattern && *pattern ? pattern : kDefaultPattern;
  const char* session = secure_getenv("PAGEWASTE_SESSION");
  if (session && *session) {
    s.session_id = ParseHex(session);
  } else if (getrandom(&s.session_id, sizeof s.session_id, GRND_NONBLOCK) !=
             sizeof s.session_id) {
    s.session_id = s.start_monotonic_ns ^ (uint64_t{s.pid} << 32);
  }
  ReadProcessIdentity(&s);
  s.heap_start = ReadHeapStart();
  s.own_code = FindCodeContaining(reinterpret_cast<const void*>(&Initialize));
  s.unwinder_code = FindCodeContaining(reinterpret_cast<const void*>(&unw_backtrace));
  // The trace file first: the shim's own system calls are counted from its
  // creation on (and a strace of the process can find that point).
  const char* sink = secure_getenv("PAGEWASTE_SINK");
  s.use_mapping = !(sink && strcmp(sink, "write") == 0);
  if (!s.sink.Open(s.pattern, s.exe_name, s.pid, s.session_id, s.use_mapping)) {
    Say("cannot create the trace file ", s.pattern, "; not tracing");
    s.mode.store(TraceMode::kDisabled);
    return;
  }
  MarkForObserver();
  if (!s.stacks.Init()) {
    Say("cannot reserve memory for the stack table; not tracing");
    s.sink.Close();
    s.mode.store(TraceMode::kDisabled);
    return;
  }
  SyscallCounts table;
  table.Add(format::SyscallKind::kMmap, StackTable::kInitMmaps);
  // The unwind rule cache (one mmap); PAGEWASTE_UNWIND=libunwind leaves it
  // out and every stack to libunwind.
  const char* unwind = secure_getenv("PAGEWASTE_UNWIND");
  if (!(unwind && strcmp(unwind, "libunwind") == 0)) {
    InitFastUnwind();
    table.Add(format::SyscallKind::kMmap);
  }
  // pagewaste run --sample BYTES: the sampled blocks' table (one mmap).
  if (const char* sample = secure_getenv("PAGEWASTE_SAMPLE"); sample && *sample) {
    uint64_t interval = strtoull(sample, nullptr, 10);
    if (interval > 1 && s.sampled.Init()) {
      s.sample_interval = interval;
      table.Add(format::SyscallKind::kMmap);
    }
  }
  CountShimSyscalls(table);
  WriteTracePreamble(static_cast<uint32_t>(getppid()));
  const char* syscalls = secure_getenv("PAGEWASTE_SYSCALLS");
  InitSyscallDispatch(!(syscalls && strcmp(syscalls, "estimate") == 0));
  pthread_atfork(BeforeFork, AfterForkParent, AfterForkChild);
  InstallFatalSignalHandlers();
  s.mode.store(TraceMode::kTracing, std::memory_order_release);
}

void Finalize(format::EndReason reason, int64_t status) {
  TraceState& s = g_state;
  if (IsForeignProcess()) return;
  uint32_t tid = CurrentTid();
  bool from_signal = reason == format::EndReason::kSignal;
  bool locked = false;
  if (from_signal && s.lock.HeldBy(tid)) {
    // Interrupted inside the shim: every committed record is whole.
  } else if (from_signal) {
    locked = s.lock.TryLockFor(tid, 100000);
    if (!locked) return;  // another thread is stuck mid-write; keep what is on disk
  } else {
    s.lock.Lock(tid);
    locked = true;
  }
  TraceMode expected = TraceMode::kTracing;
  if (s.mode.compare_exchange_strong(expected, TraceMode::kFinished)) {
    RecordLiveMappingsAtExit();
    s.writer.Flush();
    s.sink.StopMapping();
    if (reason == format::EndReason::kExec)
      s.exec_end_offset = static_cast<int64_t>(s.sink.Size());
    MarkForObserver();
    SyscallCounts observed, before_start;
    if (s.observed.magic == format::kObservedMagic) {
      for (int i = 0; i < format::kSyscallKinds; ++i) {
        observed.count[i] = s.observed.counts[i];
        before_start.count[i] = s.observed.before_start[i];
      }
    }
    s.writer.End(reason, status, ShimSyscalls(), observed, before_start);
    s.sink.Close();
  }
  if (locked) s.lock.Unlock();
}

void ResumeAfterFailedExec() {
  TraceState& s = g_state;
  s.lock.Lock(CurrentTid());
  if (s.mode.load() == TraceMode::kFinished && s.exec_end_offset >= 0) {
    s.sink.TruncateTo(static_cast<uint64_t>(s.exec_end_offset));
    s.exec_end_offset = -1;
    s.mode.store(TraceMode::kTracing);
  }
  s.lock.Unlock();
}

bool IsForeignProcess() {
  TraceMode mode = g_state.mode.load(std::memory_order_relaxed);
  if (mode == TraceMode::kUninitialized || mode == TraceMode::kInitializing)
    return false;
  return static_cast<uint32_t>(syscall(SYS_getpid)) != g_state.pid;
}

void SetExitStatus(int status) { g_state.exit_status.store(status); }

}  // namespace pagewaste::shim
