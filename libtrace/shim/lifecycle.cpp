// Starting and ending a trace, whatever way the process goes: initialization
// on the first hooked call or our constructor (whichever comes first), a new
// trace in a forked child, an End record before exec, on exit, _exit and
// fatal signals.
#include "lifecycle.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/auxv.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "format/clock.h"
#include "fast_unwind.h"
#include "real_functions.h"
#include "syscall_dispatch.h"
#include "trace.h"
#include "tracker.h"

namespace pagewaste::shim {
namespace {

constexpr const char* kDefaultPattern = "pagewaste.%e.%p.trace";

// What exit() or main's return said; the End record's status.
std::atomic<int64_t> g_exit_status{format::kUnknownStatus};

// True in a vfork()ed child (or a raw clone) that shares our memory: it must
// not touch the parent's trace.
bool IsForeignProcess() {
  TraceMode mode = g_trace.mode();
  if (mode == TraceMode::kUninitialized || mode == TraceMode::kInitializing) return false;
  return static_cast<uint32_t>(syscall(SYS_getpid)) != g_trace.info().pid;
}

void Finalize(format::EndReason reason, int64_t status) {
  if (IsForeignProcess()) return;
  g_trace.End(reason, status);
}

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

// ": REASON; not tracing", without allocating (no translation of the
// message, unlike strerror).
const char* WhyNot(int error) {
  static char line[160];
  const char* reason = strerrordesc_np(error);
  if (!reason) reason = "unknown error";
  size_t n = 0;
  for (const char* part : {": ", reason, "; not tracing"})
    for (const char* c = part; *c && n + 1 < sizeof line; ++c) line[n++] = *c;
  line[n] = 0;
  return line;
}

void ReadProcessIdentity(ProcessInfo* s) {
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
  s->argc = g_argc;
  s->argv = g_argv;
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

// Every lock of the shim is held across fork(), so that the child's copies
// of what they guard are whole (the trace's, then the tracker's).
void BeforeFork() {
  g_trace.BeforeFork();
  HoldTrackerTables();
}

void AfterForkParent() {
  ReleaseTrackerTables();
  g_trace.AfterForkParent();
}

void AfterForkChild() {
  ReleaseTrackerTables();
  if (!g_trace.AfterForkChild())
    Say("cannot create the forked child's trace file ", g_trace.path(), WhyNot(errno));
}

// The file name this shim was loaded from, or null.
const char* ShimFile() {
  Dl_info dl;
  if (!dladdr(reinterpret_cast<void*>(&ShimFile), &dl) || !dl.dli_fname) return nullptr;
  return dl.dli_fname;
}

// The last component of the path [path, end).
const char* BaseName(const char* path, const char* end) {
  const char* base = path;
  for (const char* p = path; p < end; ++p)
    if (*p == '/') base = p + 1;
  return base;
}

bool SameText(const char* a, const char* a_end, const char* b, const char* b_end) {
  return a_end - a == b_end - b && memcmp(a, b, static_cast<size_t>(a_end - a)) == 0;
}

// Removes the shim's own entries from an LD_PRELOAD value, in place (its
// entries are separated by spaces or colons). An entry is ours when it ends
// in our file's name: by path, or by the name the loader searched for.
void DropShimFromPreloadList(char* list, const char* shim) {
  const char* shim_end = shim + strlen(shim);
  const char* shim_base = BaseName(shim, shim_end);
  char* out = list;
  for (char* p = list; *p;) {
    char* end = p;
    while (*end && *end != ':' && *end != ' ') ++end;
    bool ours = SameText(BaseName(p, end), end, shim_base, shim_end);
    if (end > p && !ours) {
      if (out != list) *out++ = ':';
      memmove(out, p, static_cast<size_t>(end - p));
      out += end - p;
    }
    p = *end ? end + 1 : end;
  }
  *out = 0;
}

// In a process the shim does not trace because it runs privileged
// (AT_SECURE): takes PAGEWASTE_* and the shim's LD_PRELOAD entry out of the
// environment, so that no child it starts is traced on the caller's say.
void ForgetTracingEnvironment() {
  // No setenv or unsetenv: they allocate and take the environment's lock.
  // The entries are moved down in the array the program reads, as
  // unsetenv would, and LD_PRELOAD's value is shortened where it lies.
  const char* shim = ShimFile();
  char** kept = environ;
  for (char** e = environ; e && *e; ++e) {
    if (strncmp(*e, "PAGEWASTE_", 10) == 0) continue;
    if (shim && strncmp(*e, "LD_PRELOAD=", 11) == 0) {
      DropShimFromPreloadList(*e + 11, shim);
      if ((*e)[11] == 0) continue;
    }
    *kept++ = *e;
  }
  if (kept) *kept = nullptr;
}

__attribute__((constructor)) void StartEarly() {
  Scope scope;  // initializes if no hooked call has yet
}

__attribute__((destructor)) void StopLate() {
  Finalize(format::EndReason::kExit, g_exit_status.load());
}

}  // namespace

void Initialize() {
  if (!g_trace.ClaimStart()) return;
  const char* missing = nullptr;
  // A set-uid or otherwise privileged exec (AT_SECURE): its environment is
  // the unprivileged caller's, so nothing in it may choose what this process
  // writes, or where. Such a process is not traced (the loader preloads into
  // it only from a system directory anyway): every call passes through to
  // the real function, and what would trace its children is taken out of
  // the environment it hands on. The getenv calls below are secure_getenv
  // for the same reason.
  if (getauxval(AT_SECURE)) {
    ResolveRealFunctions(&missing);
    ForgetTracingEnvironment();
    return g_trace.Disable();
  }
  if (!ResolveRealFunctions(&missing)) {
    Say("cannot find ", missing, "; not tracing");
    return g_trace.Disable();
  }
  ProcessInfo& info = g_trace.mutable_info();
  info.page_size = static_cast<uint32_t>(sysconf(_SC_PAGESIZE));
  info.pid = static_cast<uint32_t>(getpid());
  info.start_monotonic_ns = CoarseMonotonicNs();
  info.started_ns = MonotonicNs();
  info.time_resolution_ns = CoarseResolutionNs();
  const char* pattern = secure_getenv("PAGEWASTE_OUTPUT");
  info.pattern = pattern && *pattern ? pattern : kDefaultPattern;
  const char* session = secure_getenv("PAGEWASTE_SESSION");
  if (session && *session) {
    info.session_id = ParseHex(session);
  } else if (getrandom(&info.session_id, sizeof info.session_id, GRND_NONBLOCK) !=
             sizeof info.session_id) {
    info.session_id = info.start_monotonic_ns ^ (uint64_t{info.pid} << 32);
  }
  ReadProcessIdentity(&info);
  const char* sink = secure_getenv("PAGEWASTE_SINK");
  info.use_mapping = !(sink && strcmp(sink, "write") == 0);

  TrackerSetup setup;
  Dl_info dl;
  setup.glibc_malloc = dladdr(reinterpret_cast<void*>(real.malloc), &dl) && dl.dli_fname &&
                       strstr(dl.dli_fname, "libc.so");
  setup.heap_start = ReadHeapStart();
  setup.own_code = FindCodeContaining(reinterpret_cast<const void*>(&Initialize));
  setup.unwinder_code = FindCodeContaining(reinterpret_cast<const void*>(&unw_backtrace));
  SetUpTracker(setup);

  switch (g_trace.Open()) {
    case Trace::OpenResult::kOpen:
      break;
    case Trace::OpenResult::kNoFile:
      Say("cannot create the trace file ", g_trace.path(), WhyNot(errno));
      return g_trace.Disable();
    case Trace::OpenResult::kNoStackTable:
      Say("cannot reserve memory for the stack table; not tracing");
      return g_trace.Disable();
  }
  // The unwind rule cache (one mmap); PAGEWASTE_UNWIND=libunwind leaves it
  // out and every stack to libunwind.
  const char* unwind = secure_getenv("PAGEWASTE_UNWIND");
  if (!(unwind && strcmp(unwind, "libunwind") == 0)) {
    InitFastUnwind();
    g_trace.CountOwn(format::SyscallKind::kMmap);
  }
  // pagewaste run --sample BYTES: the sampled blocks' table (one mmap).
  if (const char* sample = secure_getenv("PAGEWASTE_SAMPLE"); sample && *sample) {
    uint64_t interval = strtoull(sample, nullptr, 10);
    if (StartSampling(interval)) {
      info.sample_interval = interval;
      g_trace.CountOwn(format::SyscallKind::kMmap);
    }
  }
  if (!g_trace.Begin(static_cast<uint32_t>(getppid()))) {
    Say("cannot write the trace file ", g_trace.path(), WhyNot(errno));
    return g_trace.Disable();
  }
  const char* syscalls = secure_getenv("PAGEWASTE_SYSCALLS");
  InitSyscallDispatch(!(syscalls && strcmp(syscalls, "estimate") == 0),
                      syscalls && strcmp(syscalls, "lock-waits") == 0);
  pthread_atfork(BeforeFork, AfterForkParent, AfterForkChild);
  InstallFatalSignalHandlers();
  g_trace.Resume();
}

void BeforeExec() {
  DisableSyscallDispatchForExec();
  if (!IsForeignProcess()) Finalize(format::EndReason::kExec, format::kUnknownStatus);
}

void AfterFailedExec() {
  if (!IsForeignProcess()) g_trace.ResumeAfterFailedExec();
}

void SetExitStatus(int status) { g_exit_status.store(status); }

void OnUnderscoreExit(int status) { Finalize(format::EndReason::kUnderscoreExit, status); }

}  // namespace pagewaste::shim
