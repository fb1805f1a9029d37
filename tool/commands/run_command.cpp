// `pagewaste run` and `pagewaste attach`: a program traced by the backend that
// suits it, and its traces finished (run_command.h).
#include "run_command.h"

#include <dirent.h>
#include <elf.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>
#include <mutex>
#include <new>
#include <optional>
#include <set>
#include <system_error>
#include <thread>

#include <fmt/format.h>

#include "symbols/embed_symbols.h"
#include "exit_codes.h"
#include "elf/elf_headers.h"
#include "ptrace/held_child.h"
#include "ptrace/proc_maps.h"
#include "ptrace/tracer.h"
#ifdef PAGEWASTE_HAVE_BPF
#include "bpf/bpf_programs.h"
#include "bpf/bpf_tracer.h"
#endif
#include "render/render.h"
#include "replay/replay.h"
#include "rewrite/trace_compressor.h"
#include "reader/trace_reader.h"

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

// The traces of this session under the pattern's directory, oldest first.
std::vector<std::string> FindSessionTraces(const std::string& pattern, uint64_t session) {
  std::string dir = fs::path(pattern).parent_path().string();
  std::vector<std::pair<uint64_t, std::string>> found;
  if (dir.find('%') != std::string::npos) return {};
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_regular_file(ec)) continue;
    std::string err;
    auto source = OpenFileSource(entry.path().string(), &err);
    if (!source) continue;
    TraceReader reader(std::move(source));
    TraceHeader header;
    if (reader.ReadHeader(&header, &err) && header.process.session_id == session)
      found.push_back({header.process.start_realtime_ns, entry.path().string()});
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> paths;
  for (auto& [time, path] : found) paths.push_back(path);
  return paths;
}

// Traces up to this size get a line of figures after the run (a replay
// without symbols, well under 0.1 s); larger ones are left to `pagewaste
// report`, so that the run does not take a replay's time on top.
constexpr uint64_t kSummaryLimit = 4u << 20;

// The line for a trace too large to replay here: what its header says.
std::string TraceHeaderLine(const std::string& path, const TraceHeader& header,
                            uint64_t plain_bytes, uint64_t bytes) {
  return fmt::format("  {}  ({}, pid {}, {}): {} B of trace{}\n", path,
                     fs::path(header.exe).filename().string(), header.process.pid,
                     BackendName(header.process.backend), GroupDigits(bytes),
                     plain_bytes != bytes
                         ? fmt::format(" (zstd, from {} B)", GroupDigits(plain_bytes))
                         : "");
}

// A Go program the preload shim recorded (a cgo build, dynamically linked):
// its runtime makes memory system calls of its own (madvise, munmap), past
// the C library, and the shim does not see them. Said once per program.
class GoPrograms {
 public:
  void Note(const TraceHeader& header) {
    if (header.process.backend != format::Backend::kPreload || !seen_.insert(header.exe).second ||
        !ptrace::IsGoProgram(header.exe))
      return;
    lines_ += fmt::format(
        "pagewaste: {} (pid {}) is a Go program: its runtime makes memory system calls of its "
        "own, past the C library, which the preload shim does not see; --backend ptrace "
        "records every one\n",
        fs::path(header.exe).filename().string(), header.process.pid);
  }
  const std::string& lines() const { return lines_; }

 private:
  std::set<std::string> seen_;  // executables looked at
  std::string lines_;
};

// What finishing one trace said, and its header where it could be read;
// its figures where it was replayed.
struct FinishedTrace {
  std::string lines;
  std::optional<TraceHeader> header;
  std::optional<CostTotals> summary;
  bool trouble = false;  // an error, or a trace not complete: always said
};

// The symbols every trace of a run shares, one trace at a time.
struct SharedSymbols {
  std::mutex mutex;
  SymbolCache cache;
};

// Compresses a closed trace and adds its symbols: the symbol section is
// built from the plain trace on this thread while another compresses it,
// and appended once both are done. Says what failed in lines.
CompressResult CompressAndSymbolize(const std::string& path, const RunOptions& options,
                                    SharedSymbols* symbols, std::string* lines) {
  CompressResult compressed;
  bool compressed_ok = true;
  std::string compress_err;
  auto compress = [&] {
    try {
      compressed_ok = CompressTrace(path, &compressed, &compress_err);
    } catch (const std::bad_alloc&) {
      compressed_ok = false;
      compress_err = path + ": out of memory to compress it";
    }
  };
  SymbolSection section;
  EmbedResult embedded;
  std::string symbol_err;
  bool symbols_ok = true;
  std::thread compressing;
  if (options.compress && options.symbolize) {
    try {
      compressing = std::thread(compress);
    } catch (const std::system_error&) {
      compress();  // no thread to be had: one after the other
    }
  } else if (options.compress) {
    compress();
  }
  if (options.symbolize) {
    try {
      std::lock_guard<std::mutex> lock(symbols->mutex);
      symbols_ok = BuildSymbolSection(path, &symbols->cache, &section, &embedded, &symbol_err);
    } catch (...) {
      if (compressing.joinable()) compressing.join();
      throw;
    }
  }
  if (compressing.joinable()) compressing.join();
  if (!compressed_ok) *lines += fmt::format("  {}\n", compress_err);
  if (options.symbolize && symbols_ok && embedded.why.empty()) {
    // It was read before or after compression, whichever came first.
    uint64_t end = section.trace_end;
    if (compressed.compressed && end == compressed.bytes_before) end = compressed.bytes_after;
    symbols_ok = AppendSymbolSection(path, section, end, &embedded, &symbol_err);
  }
  if (!symbols_ok) *lines += fmt::format("  {}\n", symbol_err);
  return compressed;
}

// Compresses a closed trace, adds its symbols, and says its figures in a
// line.
FinishedTrace FinishTrace(const std::string& path, const RunOptions& options,
                          SharedSymbols* symbols) {
  FinishedTrace out;
  std::string err;
  out.trouble = true;  // until the trace's line is said
  CompressResult compressed = CompressAndSymbolize(path, options, symbols, &out.lines);
  bool said_error = !out.lines.empty();
  TraceHeader header;
  auto source = OpenFileSource(path, &err);
  if (!source || !TraceReader(std::move(source)).ReadHeader(&header, &err)) {
    out.lines += fmt::format("  {}: {}\n", path, err);
    return out;
  }
  out.header = header;
  std::error_code ec;
  uint64_t bytes = fs::file_size(path, ec);
  uint64_t plain_bytes = compressed.compressed ? compressed.bytes_before : bytes;
  if (plain_bytes > kSummaryLimit) {
    out.lines += TraceHeaderLine(path, header, plain_bytes, bytes);
    out.trouble = said_error;
    return out;
  }
  Report report;
  ReplayOptions replay;
  replay.symbolize = false;
  replay.top = 1;
  if (!ReplayTrace(path, replay, &report, &err)) {
    out.lines += fmt::format("  {}: {}\n", path, err);
    return out;
  }
  const CostTotals& s = report.summary;
  out.summary = s;
  out.trouble = said_error || report.process.status != TraceStatus::kComplete;
  out.lines += fmt::format(
      "  {}  ({}, pid {}, {}): {}, {}, {} B in pages, "
      "{} B page-rounding waste, {}; {} B of trace{}\n",
      path, fs::path(report.process.header.exe).filename().string(),
      report.process.header.process.pid, BackendName(report.process.header.process.backend),
      Counted(s.allocations, "allocation", "allocations"),
      Counted(s.mappings, "mapping", "mappings"), GroupDigits(s.page_bytes),
      GroupDigits(s.page_waste_bytes), Counted(SumSyscalls(s.syscalls), "syscall", "syscalls"),
      GroupDigits(bytes),
      report.process.status == TraceStatus::kComplete ? ""
      : report.process.events_lost
          ? fmt::format(" [incomplete: {} lost]",
                        Counted(report.process.events_lost, "event", "events"))
          : std::string(" [") + TraceStatusName(report.process.status) + "]");
  return out;
}

// A line for each trace; for a run of more than kTracesListed (a test
// suite's hundreds), the traces with the most waste and every one in
// trouble, then the rest summed, and every trace's figures summed.
constexpr size_t kTracesListed = 20;
constexpr size_t kTopTraces = 10;

std::string SummaryLines(const std::vector<FinishedTrace>& finished) {
  std::string out;
  if (finished.size() <= kTracesListed) {
    for (const FinishedTrace& f : finished) out += f.lines;
    return out;
  }
  std::vector<size_t> by_waste;
  for (size_t i = 0; i < finished.size(); ++i)
    if (finished[i].summary) by_waste.push_back(i);
  std::stable_sort(by_waste.begin(), by_waste.end(), [&](size_t a, size_t b) {
    return finished[a].summary->page_waste_bytes > finished[b].summary->page_waste_bytes;
  });
  std::vector<bool> listed(finished.size(), false);
  for (size_t k = 0; k < by_waste.size() && k < kTopTraces; ++k) listed[by_waste[k]] = true;
  CostTotals all;
  size_t summed = 0, unlisted = 0;
  for (size_t i = 0; i < finished.size(); ++i) {
    const FinishedTrace& f = finished[i];
    if (f.summary) {
      all.Add(*f.summary);
      ++summed;
    }
    if (listed[i] || f.trouble)
      out += f.lines;
    else
      ++unlisted;
  }
  if (unlisted)
    out += fmt::format("  and {} not listed (above: the {} with the most waste, and any not "
                       "complete)\n",
                       Counted(unlisted, "trace", "traces"), kTopTraces);
  out += fmt::format(
      "pagewaste: in all, {}: {}, {}, {} B in pages, {} B page-rounding waste, {}\n",
      Counted(summed, "trace", "traces"), Counted(all.allocations, "allocation", "allocations"),
      Counted(all.mappings, "mapping", "mappings"), GroupDigits(all.page_bytes),
      GroupDigits(all.page_waste_bytes), Counted(SumSyscalls(all.syscalls), "syscall", "syscalls"));
  return out;
}

// Compresses each closed trace and adds its symbols (the program has
// exited, so this costs it nothing), then prints a line of figures for each.
// The traces are finished on the machine's cores at once (symbols one trace
// at a time, from the cache they share), and said in order.
void FinishTraces(const std::vector<std::string>& traces, const RunOptions& options) {
  if (traces.empty()) {
    fmt::print(stderr, "pagewaste: no trace was written (exit {} unless the program failed)\n",
               exit_code::kInternal);
    return;
  }
  fmt::print(stderr, "pagewaste: {}:\n", Counted(traces.size(), "trace", "traces"));
  SharedSymbols symbols;
  if (options.symbolize) symbols.cache.store = SymbolStore::FromEnvironment();
  std::vector<FinishedTrace> finished(traces.size());
  std::atomic<size_t> next{0};
  std::mutex failure_mutex;
  std::exception_ptr failure;  // the first exception of any thread, thrown here after
  auto work = [&] {
    try {
      for (size_t i; (i = next.fetch_add(1)) < traces.size();)
        finished[i] = FinishTrace(traces[i], options, &symbols);
    } catch (...) {
      std::lock_guard<std::mutex> lock(failure_mutex);
      if (!failure) failure = std::current_exception();
      next = traces.size();
    }
  };
  size_t cores = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> helpers;
  for (size_t i = 1; i < std::min(cores, traces.size()); ++i) helpers.emplace_back(work);
  work();
  for (std::thread& t : helpers) t.join();
  if (failure) std::rethrow_exception(failure);
  symbols.cache.SaveToStore();
  GoPrograms go_programs;
  for (const FinishedTrace& f : finished)
    if (f.header) go_programs.Note(*f.header);
  fmt::print(stderr, "{}", SummaryLines(finished));
  fmt::print(stderr, "{}", go_programs.lines());
  fmt::print(stderr, "pagewaste: see them with: pagewaste report {}\n",
             traces.size() == 1 ? traces[0] : "TRACE...");
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
