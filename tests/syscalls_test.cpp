// Exact system call accounting per allocation, with Syscall User
// Dispatch, and the estimate where it is not available.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "e2e_support.h"

namespace pagewaste::e2e {
namespace {

using nlohmann::json;

TEST(Syscalls, PinnedThresholdChargesOneMmapPerMallocAndOneMunmapPerFree) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"pinned_threshold"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  const json& r = OnlyReport(p);
  int malloc_line = SiteLine("pinned_threshold.c", "malloc");
  int free_line = SiteLine("pinned_threshold.c", "free");
  EXPECT_EQ(SyscallsAtSite(r, "pinned_threshold.c", malloc_line, "mmap"), 100u);
  EXPECT_EQ(SyscallsAtSite(r, "pinned_threshold.c", malloc_line, "munmap"), 0u);
  EXPECT_EQ(SyscallsAtSite(r, "pinned_threshold.c", free_line, "munmap"), 100u);
  EXPECT_EQ(SyscallsAtSite(r, "pinned_threshold.c", free_line, "mmap"), 0u);
  EXPECT_FALSE(r["summary"]["syscalls_estimated"].get<bool>());
  EXPECT_GT(r["summary"]["syscall_ns"].get<uint64_t>(), 0u);
  // The kernel-entry section leads with these two sites and says why.
  ASSERT_GE(r["kernel_sites"].size(), 2u);
  std::string pattern = r["kernel_sites"][0]["syscall_pattern"];
  std::string second = r["kernel_sites"][1]["syscall_pattern"];
  EXPECT_NE((pattern + second).find("each allocation maps its own pages: 100 mmap for 100 allocations"),
            std::string::npos) << pattern << " | " << second;
  EXPECT_NE((pattern + second).find("each free unmaps its pages: 100 munmap for 100 frees"),
            std::string::npos);
}

TEST(Syscalls, DynamicThresholdMovesTheSecondRoundToTheHeap) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"dynamic_threshold"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  const json& r = OnlyReport(p);
  int first = SiteLine("dynamic_threshold.c", "first");
  int second = SiteLine("dynamic_threshold.c", "second");
  int release = SiteLine("dynamic_threshold.c", "release");
  // Round one: a mapping per request, no heap growth.
  EXPECT_EQ(SyscallsAtSite(r, "dynamic_threshold.c", first, "mmap"), 100u);
  EXPECT_EQ(SyscallsAtSite(r, "dynamic_threshold.c", first, "brk"), 0u);
  EXPECT_EQ(SumAtSite(r, "dynamic_threshold.c", first, "own_mappings"), 100u);
  // Its frees unmap each block.
  EXPECT_EQ(SyscallsAtSite(r, "dynamic_threshold.c", release, "munmap"), 100u);
  // Round two: the raised threshold sends the same requests to the heap,
  // which grows with brk; no mappings of their own.
  EXPECT_EQ(SyscallsAtSite(r, "dynamic_threshold.c", second, "mmap"), 0u);
  EXPECT_GT(SyscallsAtSite(r, "dynamic_threshold.c", second, "brk"), 0u);
  EXPECT_EQ(SumAtSite(r, "dynamic_threshold.c", second, "own_mappings"), 0u);
  EXPECT_EQ(SumAtSite(r, "dynamic_threshold.c", second, "allocations"), 100u);
}

TEST(Syscalls, EightThreadsGetExactPerThreadCounts) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"threads_large"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  const json& r = OnlyReport(p);
  int workers = 0;
  for (const auto& t : r["threads"]) {
    if (t["allocations"] != 50) continue;  // the main thread
    ++workers;
    EXPECT_EQ(t["syscalls"]["mmap"], 50) << t.dump();
    EXPECT_EQ(t["syscalls"]["munmap"], 50) << t.dump();
    EXPECT_EQ(t["frees"], 50);
  }
  EXPECT_EQ(workers, 8);
  EXPECT_EQ(SyscallsAtSite(r, "threads_large.c", SiteLine("threads_large.c", "malloc"), "mmap"), 400u);
  EXPECT_EQ(SyscallsAtSite(r, "threads_large.c", SiteLine("threads_large.c", "free"), "munmap"), 400u);
}

TEST(Syscalls, AFreeThatWaitsForTheArenaLockIsChargedNoSystemCall) {
  // lock_wait.c makes one free wait in futex for the arena lock, and says
  // so. The lock's futex calls are not trapped: the free makes no system
  // call the report counts, so it records no stack of its own and is
  // charged, with nothing, to the block's allocation.
  TempDir dir;
  Profile p = ProfileProgram(dir, {"lock_wait"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.out << p.run.err;
  EXPECT_EQ(p.run.out, "the free waited on the arena lock\n");
  const json& r = OnlyReport(p);
  EXPECT_EQ(FindSite(r, "lock_wait.c", SiteLine("lock_wait.c", "free")), nullptr);
  int block = SiteLine("lock_wait.c", "block");
  EXPECT_EQ(SumAtSite(r, "lock_wait.c", block, "allocations"), 1u);
  EXPECT_EQ(SumAtSite(r, "lock_wait.c", block, "frees"), 1u);
  EXPECT_EQ(SyscallsAtSite(r, "lock_wait.c", block, "other"), 0u);
  EXPECT_EQ(r["summary"]["syscalls"]["other"], 0);
  EXPECT_FALSE(r["summary"]["syscalls_estimated"].get<bool>());
}

TEST(Syscalls, WithLockWaitsCountedTheSameFreeIsChargedItsWaitAndWake) {
  // PAGEWASTE_SYSCALLS=lock-waits traps the lock's futex calls as well: the
  // free that waited makes two system calls, its wait and, the lock being
  // contended when it took it, its wake, and records its own stack.
  TempDir dir;
  setenv("PAGEWASTE_SYSCALLS", "lock-waits", 1);
  Profile p = ProfileProgram(dir, {"lock_wait"});
  unsetenv("PAGEWASTE_SYSCALLS");
  ASSERT_EQ(p.run.exit_code, 0) << p.run.out << p.run.err;
  EXPECT_EQ(p.run.out, "the free waited on the arena lock\n");
  const json& r = OnlyReport(p);
  int free_line = SiteLine("lock_wait.c", "free");
  ASSERT_NE(FindSite(r, "lock_wait.c", free_line), nullptr);
  EXPECT_EQ(SyscallsAtSite(r, "lock_wait.c", free_line, "other"), 2u);
  EXPECT_EQ(SumAtSite(r, "lock_wait.c", free_line, "frees"), 1u);
  EXPECT_FALSE(r["summary"]["syscalls_estimated"].get<bool>());
}

TEST(Syscalls, AProgramsOwnSigsysHandlerKeepsWorking) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"own_sigsys"});
  EXPECT_EQ(p.run.exit_code, 0) << p.run.err;
  EXPECT_EQ(p.run.out, "handled 4\n");
  const json& r = OnlyReport(p);
  EXPECT_EQ(SyscallsAtSite(r, "own_sigsys.c", SiteLine("own_sigsys.c", "malloc"), "mmap"), 10u);
  EXPECT_FALSE(r["summary"]["syscalls_estimated"].get<bool>());
}

TEST(Syscalls, SignalHandlersInsideAllocatorCallsBehaveAsWithout) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"mask_in_handler"});
  EXPECT_EQ(p.run.exit_code, 0) << p.run.out << p.run.err;
  EXPECT_EQ(p.run.out, "ticks>=50 1, SIGUSR1 blocked 1\n");
}

TEST(Syscalls, MasksThatWouldBlockSigsysKeepCountingOrFallBackToEstimates) {
  // blocked_masks.c: 10 malloc(1 MiB)/free pairs each, with every signal
  // blocked through pthread_sigmask, in a handler with a full mask, and on
  // a thread that blocked everything with the raw system call.
  TempDir dir;
  Profile p = ProfileProgram(dir, {"blocked_masks"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  EXPECT_EQ(p.run.out, "usr1 blocked 1, handled 1\n");
  const json& r = OnlyReport(p);
  for (const char* name : {"masked", "in_handler", "raw"}) {
    int line = SiteLine("blocked_masks.c", name);
    EXPECT_EQ(SumAtSite(r, "blocked_masks.c", line, "allocations"), 10u) << name;
    EXPECT_EQ(SyscallsAtSite(r, "blocked_masks.c", line, "mmap"), 10u) << name;
    EXPECT_EQ(SyscallsAtSite(r, "blocked_masks.c", line, "munmap"), 10u) << name;
    const json* site = FindSite(r, "blocked_masks.c", line);
    ASSERT_NE(site, nullptr) << name;
    // Counted where SIGSYS was kept deliverable; estimated where it was not.
    EXPECT_EQ((*site)["syscalls_estimated"].get<bool>(), std::string(name) == "raw") << name;
  }
}

TEST(Syscalls, WithoutDispatchTheFiguresAreEstimatedAndSaySo) {
  TempDir dir;
  setenv("PAGEWASTE_SYSCALLS", "estimate", 1);
  Profile p = ProfileProgram(dir, {"pinned_threshold"});
  unsetenv("PAGEWASTE_SYSCALLS");
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  const json& r = OnlyReport(p);
  int malloc_line = SiteLine("pinned_threshold.c", "malloc");
  EXPECT_EQ(SyscallsAtSite(r, "pinned_threshold.c", malloc_line, "mmap"), 100u);
  EXPECT_EQ(SyscallsAtSite(r, "pinned_threshold.c", SiteLine("pinned_threshold.c", "free"), "munmap"),
            100u);
  EXPECT_TRUE(r["summary"]["syscalls_estimated"].get<bool>());
  EXPECT_EQ(r["summary"]["syscall_ns"], 0);
  const json* site = FindSite(r, "pinned_threshold.c", malloc_line);
  ASSERT_NE(site, nullptr);
  EXPECT_TRUE((*site)["syscalls_estimated"].get<bool>());
  CommandResult text = RunCapture({PagewastePath(), "report", p.traces[0]});
  EXPECT_NE(text.out.find("estimated for"), std::string::npos);
}

}  // namespace
}  // namespace pagewaste::e2e

namespace pagewaste::e2e {
namespace {

// Memory system calls strace (-f -Y) saw in the traced program after
// `marker` (the creation of its trace file), by name, in all its threads:
// every line but those of strace's own child, pagewaste run itself, and its
// threads (which compress and symbolize traces), each line's tid followed by
// "<pagewaste>". With an empty marker: everything from the program's exec
// on. (Before its exec the program's process is named pagewaste too, but
// its trace file is created after.)
std::map<std::string, uint64_t> StraceCountsAfter(const std::string& log, const std::string& marker) {
  std::map<std::string, uint64_t> counts;
  std::istringstream in(log);
  std::string line;
  std::string first;  // the tid prefix of pagewaste run's lines
  bool started = false;
  while (std::getline(in, line)) {
    std::string tid = line.substr(0, line.find(' '));
    if (first.empty()) first = tid;
    if (tid == first || (started && tid.find("<pagewaste>") != std::string::npos)) continue;
    std::string call = line.substr(tid.size());
    call.erase(0, call.find_first_not_of(' '));
    if (!started) {
      started = marker.empty() ? call.rfind("execve(", 0) == 0
                               : call.rfind("openat(", 0) == 0 &&
                                     call.find(marker) != std::string::npos &&
                                     call.find("O_CREAT") != std::string::npos;
      continue;
    }
    if (call.rfind("execve(", 0) == 0 || call.rfind("<... execve", 0) == 0) continue;
    // "<... mmap resumed>" ends a call already counted at its start;
    // "--- SIGSYS" lines are the dispatch traps, not system calls.
    if (call.rfind("<...", 0) == 0 || call.rfind("---", 0) == 0 || call.rfind("+++", 0) == 0)
      continue;
    std::string name = call.substr(0, call.find('('));
    // munmap(addr, 0): the shim's marks for an observer, in no count.
    bool mark = name == "munmap" && call.find(", 0)") != std::string::npos;
    if (name != "openat" && !mark) ++counts[name];
  }
  return counts;
}

// A pagewaste built with AddressSanitizer (make check-sanitize) cannot check
// for leaks at exit under strace: LeakSanitizer needs ptrace too. Harmless
// for a plain build.
constexpr const char* kNoLeakCheckUnderStrace = "ASAN_OPTIONS=detect_leaks=0";

class AgainstStrace : public ::testing::TestWithParam<const char*> {};

TEST_P(AgainstStrace, TraceTotalsPlusTheShimsOwnEqualWhatStraceCounts) {
  if (RunCapture({"sh", "-c", "command -v strace"}).exit_code != 0)
    GTEST_SKIP() << "strace is not installed (make test installs it)";
  TempDir dir;
  std::string trace = dir.path() + "/program.trace";
  std::string log = dir.path() + "/strace.log";
  CommandResult run = RunCapture({"env", kNoLeakCheckUnderStrace, "strace", "-f", "-Y", "-o", log, "-e",
                                  "trace=mmap,munmap,mremap,brk,madvise,mprotect,openat",
                                  PagewastePath(), "run", "-o", trace, "--",
                                  ProgramPath(GetParam())});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  CommandResult report = RunCapture({PagewastePath(), "report", "--format", "json", trace});
  ASSERT_EQ(report.exit_code, 0) << report.err;
  json r = ParseReport(report.out);
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  auto seen = StraceCountsAfter(text, trace);
  ASSERT_FALSE(seen.empty()) << "the trace file's creation was not found in the strace log";
  for (const char* kind : {"mmap", "munmap", "mremap", "brk", "madvise", "mprotect"}) {
    uint64_t traced = r["summary"]["syscalls"][kind].get<uint64_t>();
    uint64_t shims = r["trace"]["shim_syscalls"][kind].get<uint64_t>();
    EXPECT_EQ(seen[kind], traced + shims)
        << kind << ": strace " << seen[kind] << ", trace " << traced << " + shim " << shims;
  }
}

// A process that leaves with its own exit_group while three threads still
// run: its trace is completed by run (each dead thread's chunk finished, so
// that it compresses: 263,799 B before), and with the observer its End
// record carries the observer's counts (before, the trace was truncated).
TEST(RawExit, ThreadsAndTheObserverLeaveACompleteCompressedTrace) {
  for (bool observe : {false, true}) {
    SCOPED_TRACE(observe ? "observed" : "supervised");
    TempDir dir;
    std::string trace = dir.path() + "/raw.trace";
    std::vector<std::string> argv = {PagewastePath(), "run", "-o", trace};
    if (observe) argv.push_back("--observe-syscalls");
    argv.insert(argv.end(), {"--", ProgramPath("raw_exit"), "3", "threads"});
    CommandResult run = RunCapture(argv);
    EXPECT_EQ(run.exit_code, 3) << run.err;
    CommandResult report = RunCapture({PagewastePath(), "report", "--format", "json", trace});
    ASSERT_EQ(report.exit_code, 0) << report.err;
    json r = ParseReport(report.out);
    EXPECT_EQ(r["trace"]["status"], "complete");
    EXPECT_EQ(r["process"]["exit"]["reason"], "raw_exit");
    EXPECT_EQ(r["process"]["exit"]["status"], 3);
    EXPECT_EQ(r["process"]["threads"], 4);
    EXPECT_EQ(SumAtSite(r, "raw_exit.c", SiteLine("raw_exit.c", "worker"), "allocations"), 30u);
    EXPECT_EQ(SumAtSite(r, "raw_exit.c", SiteLine("raw_exit.c", "malloc"), "allocations"), 25u);
    EXPECT_LT(r["trace"]["file_bytes"].get<uint64_t>(), 16384u);  // compressed
    if (!observe) continue;
    // The observer's counts reach the End record run writes. Outside
    // allocator calls, at least the three threads' stacks were mapped and
    // their guard pages set (glibc's arenas, whose trimming varies from run
    // to run with the addresses, are in the events).
    ASSERT_TRUE(r["summary"]["outside_syscalls"].is_object()) << "the observer's counts are lost";
    EXPECT_GE(r["summary"]["outside_syscalls"]["mmap"].get<uint64_t>(), 3u);
    EXPECT_GE(r["summary"]["outside_syscalls"]["mprotect"].get<uint64_t>(), 3u);
  }
}

// With the observer (--observe-syscalls), the calls made outside allocator
// calls are counted too, so that the events, the shim's own and the outside
// line add up to strace's count for programs that do make such calls: the
// loader's for dlopen, thread stacks and guard pages. (strace and the
// observer cannot trace the same process, so they see two runs of a
// deterministic program.)
struct ObservedCase {
  const char* program;
  const char* argument;
};

void PrintTo(const ObservedCase& c, std::ostream* os) { *os << c.program; }

class WithTheObserver : public ::testing::TestWithParam<ObservedCase> {};

TEST_P(WithTheObserver, EventsShimAndOutsideAddUpToStrace) {
  if (RunCapture({"sh", "-c", "command -v strace"}).exit_code != 0)
    GTEST_SKIP() << "strace is not installed (make test installs it)";
  std::vector<std::string> command = {ProgramPath(GetParam().program)};
  if (*GetParam().argument) command.push_back(ProgramPath(GetParam().argument));
  TempDir dir;
  std::string plain = dir.path() + "/plain.trace";
  std::string log = dir.path() + "/strace.log";
  std::vector<std::string> argv = {"env", kNoLeakCheckUnderStrace, "strace", "-f", "-Y", "-o", log, "-e",
                                   "trace=mmap,munmap,mremap,brk,madvise,mprotect,openat,execve",
                                   PagewastePath(), "run", "-o", plain, "--"};
  argv.insert(argv.end(), command.begin(), command.end());
  ASSERT_EQ(RunCapture(argv).exit_code, 0);
  json plain_report = ParseReport(RunCapture({PagewastePath(), "report", "--format", "json", plain}).out);
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  auto seen = StraceCountsAfter(text, plain);
  auto from_exec = StraceCountsAfter(text, "");

  std::string observed = dir.path() + "/observed.trace";
  argv = {PagewastePath(), "run", "--observe-syscalls", "-o", observed, "--"};
  argv.insert(argv.end(), command.begin(), command.end());
  CommandResult run = RunCapture(argv);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  json r = ParseReport(RunCapture({PagewastePath(), "report", "--format", "json", observed}).out);
  ASSERT_TRUE(r["summary"]["outside_syscalls"].is_object()) << "no observer counts in the trace";
  EXPECT_GT(r["summary"]["outside_syscalls"]["total"].get<uint64_t>(), 0u);
  for (const char* kind : {"mmap", "munmap", "mremap", "brk", "madvise", "mprotect"}) {
    uint64_t events = r["summary"]["syscalls"][kind].get<uint64_t>();
    uint64_t shims = r["trace"]["shim_syscalls"][kind].get<uint64_t>();
    uint64_t outside = r["summary"]["outside_syscalls"][kind].get<uint64_t>();
    EXPECT_EQ(seen[kind], events + shims + outside)
        << kind << ": strace " << seen[kind] << ", events " << events << " + shim " << shims
        << " + outside " << outside;
  }
  // And what the loader did before the shim started completes the count
  // from the program's exec.
  ASSERT_TRUE(r["summary"]["before_start_syscalls"].is_object());
  for (const char* kind : {"mmap", "munmap", "mremap", "brk", "madvise", "mprotect"}) {
    uint64_t all = r["summary"]["syscalls"][kind].get<uint64_t>() +
                   r["trace"]["shim_syscalls"][kind].get<uint64_t>() +
                   r["summary"]["outside_syscalls"][kind].get<uint64_t>() +
                   r["summary"]["before_start_syscalls"][kind].get<uint64_t>();
    EXPECT_EQ(from_exec[kind], all) << kind << " from exec";
  }
  // The text report shows them as a line of their own.
  CommandResult text_report = RunCapture({PagewastePath(), "report", observed});
  EXPECT_NE(text_report.out.find("outside allocations  "), std::string::npos);
  EXPECT_EQ(text_report.out.find("not observed"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(LoaderAndThreads, WithTheObserver,
                         ::testing::Values(ObservedCase{"dlopen_plugin", "plugin.so"},
                                           ObservedCase{"threads_large", ""}),
                         [](const auto& info) { return std::string(info.param.program); });

// malloc_count_jemalloc: jemalloc calls mmap and madvise through the PLT
// from inside malloc; each must be counted once, on the allocation.
INSTANTIATE_TEST_SUITE_P(DeterministicPrograms, AgainstStrace,
                         ::testing::Values("pinned_threshold", "dynamic_threshold",
                                           "mmap_two_bytes", "large_malloc",
                                           "malloc_count_jemalloc"));

}  // namespace
}  // namespace pagewaste::e2e
