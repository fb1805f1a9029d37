// `pagewaste run` and `pagewaste attach`: a program traced by the backend that
// suits it (run_command.h); its traces are finished in finish_traces.cpp.
#include "run_command.h"

#include <dirent.h>
#include <elf.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <system_error>

#include <fmt/format.h>

#include "exit_codes.h"
#include "finish_traces.h"
#include "elf/elf_headers.h"
#include "ptrace/held_child.h"
#include "ptrace/proc_maps.h"
#include "ptrace/tracer.h"
#ifdef PAGEWASTE_HAVE_BPF
#include "bpf/bpf_programs.h"
#include "bpf/bpf_tracer.h"
#endif

namespace pagewaste {
namespace {

namespace fs = std::filesystem;

constexpr const char* kShimName = "libpagewaste_preload.so";
constexpr const char* kDefaultPattern = "pagewaste.%e.%p.trace";

pid_t g_child = 0;

void Forward(int sig) {
  if (g_child > 0) kill(g_child, sig);
}

std::string SelfDirectory() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : self.parent_path().string();
}

// This run's session id: its pid in the high 32 bits (format::SessionPid),
// so that another run finding one of its traces at a path it wants can
// tell that this run is still using it, and random low bits.
uint64_t NewSession() {
  uint32_t random = 0;
  if (getrandom(&random, sizeof random, 0) != sizeof random)
    random = static_cast<uint32_t>(time(nullptr) ^ (static_cast<uint64_t>(getpid()) << 7));
  return (static_cast<uint64_t>(getpid()) << 32) | random;
}

// The file execvp would run for program.
std::string ResolveProgram(const std::string& program) {
  if (program.find('/') != std::string::npos) return program;
  const char* path = getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return program;
}

// CAP_SYS_PTRACE in our effective set: the kernel then honours a set-uid
// bit under our ptrace. Without it, it runs the program as us.
bool MayTracePrivileged() {
  std::optional<uint64_t> caps = ptrace::CapabilitiesOf(getpid(), "CapEff");
  return caps ? (*caps & (uint64_t{1} << 19)) != 0 : geteuid() == 0;  // CAP_SYS_PTRACE
}

// The identity or capabilities exec would give the program that we do not
// have; empty otherwise (ptrace::PrivilegesGranted).
std::string PrivilegeGained(const std::string& path) {
  return ptrace::PrivilegesGranted(path, geteuid(), getegid(),
                                   ptrace::CapabilitiesOf(getpid(), "CapPrm").value_or(0));
}

}  // namespace

// Whether the bpf backend can run here; why not in *why.
bool BpfUsable(std::string* why) {
#ifdef PAGEWASTE_HAVE_BPF
  return bpf::CanLoad(why);
#else
  *why = "this pagewaste was built without it";
  return false;
#endif
}

std::optional<format::Backend> ChooseBackend(const std::string& program, std::string* why) {
  std::string path = ResolveProgram(program);
  std::string gained = PrivilegeGained(path);
  bool is_static = !ptrace::HasInterpreter(path);
  // BPF programs see a process without tracing it: a set-uid program keeps
  // its privileges whoever runs pagewaste, as long as it may load them.
  std::string no_bpf;
  if (is_static && BpfUsable(&no_bpf)) {
    *why = "statically linked: no dynamic loader to preload into";
    if (!gained.empty()) *why += "; " + gained + ", it keeps its privileges";
    *why += "; tracing it with BPF";
    return format::Backend::kBpf;
  }
  if (!gained.empty() && !MayTracePrivileged()) {
    *why = gained + ", and you may not trace it with its privileges: the loader ignores "
           "LD_PRELOAD for it, and under ptrace the kernel would run it as you";
    return std::nullopt;
  }
  if (is_static) {
    *why = "statically linked: no dynamic loader to preload into";
    if (!gained.empty()) *why += "; " + gained + ", it keeps its privileges";
    *why += "; tracing it with ptrace (not BPF: " + no_bpf + ")";
    return format::Backend::kPtrace;
  }
  if (!gained.empty()) {
    *why = gained + ": the loader ignores LD_PRELOAD; it keeps its privileges; tracing it with "
           "ptrace";
    return format::Backend::kPtrace;
  }
  *why = "dynamically linked";
  return format::Backend::kPreload;
}

namespace {
// A library of ours: $variable, else beside this executable in the build
// tree or the installed layout.
std::string FindOurLibrary(const char* variable, const std::string& name,
                           std::string* searched) {
  if (const char* env = getenv(variable); env && *env) return env;
  std::string self = SelfDirectory();
  const std::string candidates[] = {
      self + "/../" PAGEWASTE_INSTALL_SHIM_DIR "/" + name,  // installed
      self + "/../libtrace/" + name,                         // build tree
      self + "/" + name,
  };
  for (const std::string& c : candidates) {
    if (access(c.c_str(), R_OK) == 0) return fs::canonical(c).string();
    *searched += (searched->empty() ? "" : ", ") + c;
  }
  return {};
}
}  // namespace

std::string FindShim(std::string* searched) {
  return FindOurLibrary("PAGEWASTE_PRELOAD", kShimName, searched);
}

std::string FindFeedLibrary(std::string* searched) {
  return FindOurLibrary("PAGEWASTE_FEED_LIBRARY", "libpagewaste_feed.so", searched);
}

namespace {

// Runs the command untraced and waits for it; returns its status (128+N
// for signal N) or 125/126/127. Like a shell: terminal signals reach it
// through the process group; others sent to us are passed on.
int SpawnAndWait(const RunOptions& options) {
  ptrace::HeldChild child;
  std::string err;
  if (!child.Fork(options.command, {}, nullptr, &err)) {
    fmt::print(stderr, "pagewaste: {}\n", err);
    return exit_code::kInternal;
  }
  g_child = child.pid();
  signal(SIGINT, SIG_IGN);
  signal(SIGQUIT, SIG_IGN);
  for (int sig : {SIGTERM, SIGHUP, SIGUSR1, SIGUSR2}) signal(sig, Forward);
  child.Release(1);
  int exec_errno = 0;
  bool exec_failed = child.ExecFailed(&exec_errno);
  int status = 0;
  while (waitpid(child.pid(), &status, 0) < 0 && errno == EINTR) {
  }
  if (exec_failed) {
    bool missing = exec_errno == ENOENT || exec_errno == ENOTDIR;
    fmt::print(stderr, "pagewaste: {}: {}\n", options.command[0],
               missing ? "command not found" : strerror(exec_errno));
    return missing ? exit_code::kNotFound : exit_code::kCannotExecute;
  }
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

// After a tracer returned the program's code (or -1, or 126/127 with err):
// says err, then finishes the session's traces. Nothing recorded is a
// failure of ours, whatever the program did; its own failure keeps its
// status.
int FinishSession(int code, const std::string& err, const RunOptions& options,
                  const std::string& pattern, uint64_t session,
                  std::vector<std::string>* traces) {
  if (!err.empty()) fmt::print(stderr, "pagewaste: {}\n", err);
  if (code < 0) return exit_code::kInternal;
  if (!err.empty() && (code == exit_code::kNotFound || code == exit_code::kCannotExecute))
    return code;
  std::vector<std::string> written = FindSessionTraces(pattern, session);
  FinishTraces(written, options);
  if (traces) *traces = written;
  if (written.empty() && code == 0) return exit_code::kInternal;
  return code;
}

// Runs the command under the tracer (the ptrace backend, or the preload
// backend's supervisor or observer), then finishes the session's traces.
int RunTraced(ptrace::TracerOptions tracer, const RunOptions& options, const std::string& pattern,
              uint64_t session, std::vector<std::string>* traces) {
  // Supervising as root: the static images go to the BPF programs, which
  // never stop them, rather than to a stop at every system call.
#ifdef PAGEWASTE_HAVE_BPF
  std::unique_ptr<bpf::BpfAssistant> assistant;
  std::string no_bpf;
  if (tracer.supervise_preload && BpfUsable(&no_bpf)) {
    bpf::BpfTracerOptions bpf_options;
    bpf_options.output_pattern = pattern;
    bpf_options.session_id = session;
    bpf_options.ring_bytes = options.ring_bytes;
    assistant = bpf::BpfAssistant::Start(bpf_options);
    tracer.static_images = assistant.get();
  }
#endif
  tracer.command = options.command;
  tracer.output_pattern = pattern;
  tracer.session_id = session;
  std::string err;
  int code = ptrace::RunUnderPtrace(tracer, &err);
  if (tracer.static_images) tracer.static_images->Stop();
  return FinishSession(code, err, options, pattern, session, traces);
}

// Runs the command under the bpf backend, then finishes the session's
// traces. When auto chose it and the programs cannot be loaded after all
// (a kernel that refuses them), the ptrace backend runs it instead.
int RunWithBpf(const RunOptions& options, const std::string& pattern, uint64_t session,
               std::vector<std::string>* traces, bool chosen_by_auto) {
#ifdef PAGEWASTE_HAVE_BPF
  if (options.sample_bytes)
    fmt::print(stderr, "pagewaste: --sample does not apply to the bpf backend, which sees no "
                       "malloc calls of a program it starts; every system call is recorded\n");
  bpf::BpfTracerOptions tracer;
  tracer.command = options.command;
  tracer.output_pattern = pattern;
  tracer.session_id = session;
  tracer.ring_bytes = options.ring_bytes;
  std::string err;
  bool started = false;
  int code = bpf::RunUnderBpf(tracer, &err, &started);
  if (!started && chosen_by_auto) {
    fmt::print(stderr, "pagewaste: {}; tracing with ptrace instead\n", err);
    return RunTraced({}, options, pattern, session, traces);
  }
  return FinishSession(code, err, options, pattern, session, traces);
#else
  (void)pattern, (void)session, (void)traces, (void)options, (void)chosen_by_auto;
  fmt::print(stderr, "pagewaste: this pagewaste was built without the bpf backend (it needs "
                     "libbpf-dev, bpftool and clang at build time)\n");
  return exit_code::kInternal;
#endif
}

}  // namespace

int RunCommand(const RunOptions& options, std::vector<std::string>* traces) {
  std::string pattern = fs::absolute(options.output_pattern.empty() ? kDefaultPattern
                                                                    : options.output_pattern)
                            .string();
  // Where the traces go must take them before the program starts: found
  // afterwards, the whole run would have been untraced.
  std::string dir = fs::path(pattern).parent_path().string();
  if (dir.find('%') == std::string::npos && access(dir.c_str(), W_OK | X_OK) != 0) {
    fmt::print(stderr, "pagewaste: cannot write traces in {}: {}\n", dir, strerror(errno));
    return exit_code::kUsage;
  }
  uint64_t session = NewSession();
  std::optional<format::Backend> backend = options.backend;
  if (!backend) {
    std::string why;
    backend = ChooseBackend(options.command[0], &why);
    if (!backend) {
      fmt::print(stderr, "pagewaste: {} is {}; it runs untraced, with its privileges, and leaves "
                 "no trace (run pagewaste as root to trace it)\n", options.command[0], why);
      return SpawnAndWait(options);
    }
    if (backend != format::Backend::kPreload)
      fmt::print(stderr, "pagewaste: {} is {}\n", options.command[0], why);
  } else if (backend == format::Backend::kPtrace) {
    std::string gained = PrivilegeGained(ResolveProgram(options.command[0]));
    if (!gained.empty() && !MayTracePrivileged()) {
      fmt::print(stderr, "pagewaste: {} is {}, which a traced program gets only when pagewaste "
                 "runs as root: not run (without --backend ptrace it runs untraced)\n",
                 options.command[0], gained);
      return exit_code::kCannotExecute;
    }
  }
  if (backend == format::Backend::kBpf)
    return RunWithBpf(options, pattern, session, traces, !options.backend);
  if (backend == format::Backend::kPtrace) {
    if (options.sample_bytes)
      fmt::print(stderr, "pagewaste: --sample does not apply to the ptrace backend, which sees "
                         "no malloc calls; every system call is recorded\n");
    return RunTraced({}, options, pattern, session, traces);
  }

  std::string searched;
  std::string shim = FindShim(&searched);
  if (shim.empty()) {
    fmt::print(stderr, "pagewaste: cannot find {} (looked in {}); set PAGEWASTE_PRELOAD\n",
               kShimName, searched);
    return exit_code::kInternal;
  }
  // The shim goes first so that it sees every call before any other
  // preloaded library (an allocator such as jemalloc) does; what the user
  // had preloaded is kept after it.
  std::string preload = shim;
  if (const char* old = getenv("LD_PRELOAD"); old && *old) preload += std::string(":") + old;

  ptrace::TracerOptions tracer;
  tracer.environment = {{"LD_PRELOAD", preload},
                        {"PAGEWASTE_OUTPUT", pattern},
                        {"PAGEWASTE_SESSION", fmt::format("{:016x}", session)}};
  if (options.sample_bytes)
    tracer.environment.push_back({"PAGEWASTE_SAMPLE", std::to_string(options.sample_bytes)});
  if (options.observe_syscalls) {
    tracer.observe_only = true;
  } else {
    // The tracer follows the tree, so that the static programs it starts
    // are traced too, and the traces of processes that leave with an exit
    // system call of their own are ended.
    tracer.supervise_preload = true;
    tracer.shim_path = shim;
  }
  return RunTraced(tracer, options, pattern, session, traces);
}

int AttachCommand(const AttachOptions& options, std::vector<std::string>* traces) {
#ifdef PAGEWASTE_HAVE_BPF
  std::string pattern = fs::absolute(options.output_pattern.empty() ? kDefaultPattern
                                                                    : options.output_pattern)
                            .string();
  std::string dir = fs::path(pattern).parent_path().string();
  if (dir.find('%') == std::string::npos && access(dir.c_str(), W_OK | X_OK) != 0) {
    fmt::print(stderr, "pagewaste: cannot write traces in {}: {}\n", dir, strerror(errno));
    return exit_code::kUsage;
  }
  if (kill(options.pid, 0) != 0 && errno == ESRCH) {
    fmt::print(stderr, "pagewaste: no process {}\n", options.pid);
    return exit_code::kNotFound;
  }
  std::string why;
  if (!bpf::CanLoad(&why)) {
    fmt::print(stderr, "pagewaste: cannot attach to {}: {}\n", options.pid, why);
    return exit_code::kCannotExecute;
  }
  pid_t process = ptrace::ThreadGroupOf(options.pid);
  if (process != options.pid)
    fmt::print(stderr, "pagewaste: {} is a thread of process {}: attaching to the process\n",
               options.pid, process);
  uint64_t session = NewSession();
  bpf::BpfTracerOptions tracer;
  tracer.attach_pid = process;
  tracer.output_pattern = pattern;
  tracer.session_id = session;
  tracer.ring_bytes = options.ring_bytes;
  tracer.duration_seconds = options.duration_seconds;
  tracer.sample_bytes = options.sample_bytes;
  if (options.malloc_calls == "inject") {
    std::string searched;
    tracer.feed_library = FindFeedLibrary(&searched);
    if (tracer.feed_library.empty())
      fmt::print(stderr, "pagewaste: no allocator feed library (looked for {}): the malloc "
                         "family is seen through uprobes\n", searched);
  }
  std::string err;
  int code = bpf::RunUnderBpf(tracer, &err);
  if (!err.empty()) fmt::print(stderr, "pagewaste: {}\n", err);
  if (code == exit_code::kNotFound) return code;
  if (code < 0) return exit_code::kInternal;
  RunOptions finish;
  finish.compress = options.compress;
  finish.symbolize = options.symbolize;
  std::vector<std::string> written = FindSessionTraces(pattern, session);
  FinishTraces(written, finish);
  if (traces) *traces = written;
  return written.empty() ? exit_code::kInternal : exit_code::kOk;
#else
  (void)options, (void)traces;
  fmt::print(stderr, "pagewaste: this pagewaste was built without the bpf backend, which attach "
                     "needs (libbpf-dev, bpftool and clang at build time)\n");
  return exit_code::kInternal;
#endif
}

}  // namespace pagewaste
