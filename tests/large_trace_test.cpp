// Synthetic traces: 10 million events replay in memory bounded by the live
// set and the unique stacks, not by the number of events; a crafted stack
// chain far deeper than the format allows is refused, in bounded memory.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <chrono>
#include <algorithm>
#include <cstdio>
#include <vector>

#include "e2e_support.h"
#include "producer/record_writer.h"

namespace pagewaste::e2e {
namespace {

class FileChunks : public ChunkSink {
 public:
  explicit FileChunks(FILE* f) : f_(f) {}
  uint8_t* NextChunk(size_t) override { return nullptr; }
  bool FinishChunk(const uint8_t* data, size_t size) override {
    return fwrite(data, 1, size, f_) == size;
  }

 private:
  FILE* f_;
};

constexpr uint64_t kEvents = 10'000'000;
constexpr uint64_t kLive = 1000;  // blocks live at once

// A new trace file at path, its header written: the records follow.
FILE* CreateTrace(const std::string& path, const char* exe) {
  FILE* f = fopen(path.c_str(), "wb");
  if (!f) return nullptr;
  HeaderInfo h;
  h.process.page_size = 4096;
  h.process.pid = 1;
  h.exe = exe;
  std::vector<uint8_t> header(4096);
  fwrite(header.data(), 1, EncodeHeader(h, header.data(), header.size()), f);
  return f;
}

// A trace written by a test, record by record: its file, header written,
// and the writer; the file is closed when it goes.
class HandWrittenTrace {
 public:
  HandWrittenTrace(const std::string& path, const char* exe)
      : file_(CreateTrace(path, exe)),
        sink_(file_),
        buffer_(256 << 10),
        writer_(buffer_.data(), buffer_.size(), &sink_) {}
  ~HandWrittenTrace() {
    if (file_) fclose(file_);
  }
  bool ok() const { return file_ != nullptr; }
  RecordWriter& writer() { return writer_; }

 private:
  FILE* file_;
  FileChunks sink_;
  std::vector<uint8_t> buffer_;
  RecordWriter writer_;
};

// A two-byte anonymous mapping at stack, as a program's mmap would record it.
MmapEvent TwoByteMapping(uint64_t stack) {
  MmapEvent m;
  m.prefix = {1, 7, stack};
  m.address = 0x7f0000000000;
  m.length = 2;
  m.prot = 3;
  m.map_flags = 0x22;
  m.fd = -1;
  return m;
}

void WriteSyntheticTrace(const std::string& path) {
  HandWrittenTrace trace(path, "/synthetic");
  ASSERT_TRUE(trace.ok());
  RecordWriter& w = trace.writer();
  // Ten call sites, each a two-frame stack.
  uint64_t stacks[10];
  for (int i = 0; i < 10; ++i) stacks[i] = w.StackNode(w.StackNode(0, 0x1000 + i), 0x2000 + i);
  // A ring of kLive live blocks: each step frees the oldest, allocates anew.
  for (uint64_t i = 0; i < kEvents / 2; ++i) {
    if (i >= kLive) {
      FreeEvent fr;
      fr.prefix = {2 * i, 7, 0};
      fr.address = 0x10000000 + ((i - kLive) % kLive) * 64;
      w.Free(fr);
    }
    AllocEvent a;
    a.prefix = {2 * i + 1, 7, stacks[i % 10]};
    a.address = 0x10000000 + (i % kLive) * 64;
    a.requested = 48;
    a.usable = 56;
    w.Alloc(a);
  }
  w.End(format::EndReason::kExit, 0, SyscallCounts());
}

struct ReportRun {
  int status = -1;
  long max_rss_kib = 0;
  double seconds = 0;
  std::string json_text;
  std::string err;
};

// `pagewaste report --format json -o OUT path`, with its peak memory.
ReportRun ReportWithUsage(const TempDir& dir, const std::string& path) {
  ReportRun run;
  std::string out = dir.path() + "/report.json", err = dir.path() + "/report.err";
  auto start = std::chrono::steady_clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    freopen(err.c_str(), "w", stderr);
    execl(PagewastePath().c_str(), "pagewaste", "report", "--format", "json", "-o", out.c_str(),
          path.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  struct rusage usage;
  if (wait4(pid, &run.status, 0, &usage) != pid) return run;
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  run.max_rss_kib = usage.ru_maxrss;
  run.json_text = RunCapture({"cat", out}).out;
  run.err = RunCapture({"cat", err}).out;
  return run;
}

// `pagewaste dump` of the same trace, its output counted as it goes:
// streamed, so its memory does not grow with the 10 million lines.
TEST(LargeTrace, TenMillionEventsDumpInBoundedMemory) {
  TempDir dir;
  std::string path = dir.path() + "/synthetic.trace";
  WriteSyntheticTrace(path);
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pipe_fds[1], 1);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    // Under AddressSanitizer (make check-sanitize), freed memory waits in a
    // quarantine of 256 MiB: what is measured here is what dump holds.
    const char* asan = getenv("ASAN_OPTIONS");
    std::string options = std::string(asan ? asan : "") + (asan && *asan ? ":" : "") +
                          "quarantine_size_mb=1";
    setenv("ASAN_OPTIONS", options.c_str(), 1);
    execl(PagewastePath().c_str(), "pagewaste", "dump", path.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(pipe_fds[1]);
  uint64_t lines = 0;
  char buf[1 << 16];
  for (ssize_t n; (n = read(pipe_fds[0], buf, sizeof buf)) > 0;)
    lines += static_cast<uint64_t>(std::count(buf, buf + n, '\n'));
  close(pipe_fds[0]);
  int status = 0;
  struct rusage usage;
  ASSERT_EQ(wait4(pid, &status, 0, &usage), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  // A line for the header, each of the 20 stack nodes, each of the
  // kEvents - kLive events and the End record.
  EXPECT_EQ(lines, 1 + 20 + (kEvents - kLive) + 1);
  EXPECT_LT(usage.ru_maxrss, 64 * 1024) << "peak RSS " << usage.ru_maxrss << " KiB";
}

// A trace may name any path as a module: a FIFO (whose open would block
// for ever) and /dev/zero (whose read would never end) are not read, and
// the report says so.
TEST(CraftedTraces, ModulesThatAreNotRegularFilesAreNotRead) {
  TempDir dir;
  std::string fifo = dir.path() + "/module.fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  std::string path = dir.path() + "/modules.trace";
  {
    HandWrittenTrace trace(path, "/crafted");
    ASSERT_TRUE(trace.ok());
    RecordWriter& w = trace.writer();
    w.ModuleMap(1);
    ModuleSegment fifo_code{0x400000, 0x1000}, zero_code{0x500000, 0x1000};
    w.Module(0, &fifo_code, 1, fifo.c_str(), "");
    w.Module(0, &zero_code, 1, "/dev/zero", "");
    w.Mmap(TwoByteMapping(w.StackNode(w.StackNode(0, 0x400100), 0x500100)));
    w.End(format::EndReason::kExit, 0, SyscallCounts());
  }
  CommandResult r = RunCapture({"timeout", "-s", "KILL", "60", PagewastePath(), "report", path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("WARNING   " + fifo + ": not a regular file"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("WARNING   /dev/zero: not a regular file"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("?? (module.fifo+0x4000ff)"), std::string::npos) << r.out;
}

TEST(LargeTrace, TenMillionEventsReplayInBoundedMemory) {
  TempDir dir;
  std::string path = dir.path() + "/synthetic.trace";
  WriteSyntheticTrace(path);
  ReportRun run = ReportWithUsage(dir, path);
  ASSERT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0) << run.err;
  // Holding the events would take hundreds of megabytes; the live set (1000
  // blocks) and ten stacks take next to nothing.
  EXPECT_LT(run.max_rss_kib, 64 * 1024) << "peak RSS " << run.max_rss_kib << " KiB";
  nlohmann::json r = ParseReport(run.json_text);
  EXPECT_EQ(r["summary"]["allocations"], kEvents / 2);
  EXPECT_EQ(r["summary"]["frees"], kEvents / 2 - kLive);
  EXPECT_EQ(r["summary"]["requested_bytes"], kEvents / 2 * 48);
  EXPECT_EQ(r["summary"]["leaked_allocations"], kLive);
  EXPECT_EQ(r["call_sites"].size(), 10u);
  std::printf("replayed %llu events in %.2f s (%.1f M events/s), peak RSS %ld KiB\n",
              static_cast<unsigned long long>(kEvents - kLive), run.seconds,
              static_cast<double>(kEvents - kLive) / run.seconds / 1e6, run.max_rss_kib);
}

// One chain of 300,000 frames (2.4 MB of trace), with a mapping at its leaf:
// printing every frame of that site took 1.28 GB and wrote 134 MB. The
// reader refuses the node past the format's depth instead.
TEST(LargeTrace, AStackChainDeeperThanTheFormatAllowsIsRefusedInBoundedMemory) {
  TempDir dir;
  std::string path = dir.path() + "/deep.trace";
  {
    HandWrittenTrace trace(path, "/deep");
    ASSERT_TRUE(trace.ok());
    RecordWriter& w = trace.writer();
    uint64_t leaf = 0;
    for (int i = 0; i < 300000; ++i) leaf = w.StackNode(leaf, 0x400000 + 16 * i);
    w.Mmap(TwoByteMapping(leaf));
    w.End(format::EndReason::kExit, 0, SyscallCounts());
  }
  ReportRun run = ReportWithUsage(dir, path);
  ASSERT_TRUE(WIFEXITED(run.status)) << run.err;
  EXPECT_EQ(WEXITSTATUS(run.status), 4) << run.err;  // written, from a corrupt trace
  EXPECT_NE(run.err.find("a stack deeper than 256 frames, the format's limit"), std::string::npos)
      << run.err;
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
  EXPECT_LT(run.max_rss_kib, 64 * 1024) << "peak RSS " << run.max_rss_kib << " KiB";
  EXPECT_LT(run.json_text.size(), 1u << 20);
  nlohmann::json r = ParseReport(run.json_text);
  EXPECT_EQ(r["trace"]["status"], "corrupt");
  EXPECT_EQ(r["summary"]["mappings"], 0);
}

}  // namespace
}  // namespace pagewaste::e2e
