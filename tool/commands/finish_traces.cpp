// What run and attach do once the traced processes are gone
// (finish_traces.h): each trace compressed and symbolized, on every core,
// and a line of figures said for it.
#include "finish_traces.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <filesystem>
#include <mutex>
#include <new>
#include <optional>
#include <set>
#include <system_error>
#include <thread>

#include <fmt/format.h>

#include "exit_codes.h"
#include "elf/elf_headers.h"
#include "reader/trace_reader.h"
#include "replay/replay.h"
#include "rewrite/trace_compressor.h"
#include "symbols/embed_symbols.h"

namespace pagewaste {

namespace fs = std::filesystem;

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


namespace {

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
}  // namespace

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


}  // namespace pagewaste
