// Process trees. Under the ptrace backend: forks, threads in forked
// children, group stops with signals sent during them, vfork, exec from a
// thread; many such trees at once under a time limit; SIGTERM sent to
// pagewaste, which ends recording and leaves the program to the signal.
// Under the preload backend, whose tree the tracer follows: static programs
// started by dynamic ones are traced too, and a process that leaves with an
// exit system call of its own still gets a complete trace.
#include <gtest/gtest.h>

#include <filesystem>

#include "e2e_support.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>

namespace pagewaste::e2e {
namespace {

using nlohmann::json;

// The reports of a process_tree run, told apart by what each process did.
struct TreeReports {
  const json* parent = nullptr;        // the root: ends with exit 0
  const json* stopper = nullptr;       // the forked child stopped by SIGSTOP: exit 7
  std::vector<const json*> execed;     // the vforked child and the one exec'd from a thread
  std::vector<const json*> targets;    // exec_target_static, in those two
};

TreeReports Classify(const Profile& p) {
  TreeReports t;
  for (const json& r : p.reports) {
    std::string exe = r["process"]["exe"];
    const json& exit = r["process"]["exit"];
    if (exe.find("exec_target_static") != std::string::npos) t.targets.push_back(&r);
    else if (exit["reason"] == "exec") t.execed.push_back(&r);
    else if (exit["status"] == 7) t.stopper = &r;
    else t.parent = &r;
  }
  return t;
}

void ExpectWholeTree(const Profile& p, const std::string& backend) {
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  EXPECT_EQ(p.run.out, "tree ok\n");
  ASSERT_EQ(p.reports.size(), 6u) << p.run.err;
  TreeReports t = Classify(p);
  ASSERT_TRUE(t.parent && t.stopper) << p.run.err;
  ASSERT_EQ(t.execed.size(), 2u);
  ASSERT_EQ(t.targets.size(), 2u);
  for (const json& r : p.reports) {
    EXPECT_EQ(r["process"]["backend"], backend);
    EXPECT_EQ(r["trace"]["status"], "complete");
  }
  int pair = SiteLine("process_tree.c", "pair");
  // Each thread maps 50 pairs: 2 threads in the parent, 3 in the child.
  EXPECT_EQ(SumAtSite(*t.parent, "process_tree.c", pair, "mappings"), 100u);
  EXPECT_EQ(SumAtSite(*t.parent, "process_tree.c", pair, "page_waste_bytes"), 100u * 4094);
  EXPECT_EQ(SumAtSite(*t.stopper, "process_tree.c", pair, "mappings"), 150u);
  EXPECT_EQ(SumAtSite(*t.stopper, "process_tree.c", SiteLine("process_tree.c", "unpair"),
                      "unmappings"),
            150u);
  EXPECT_EQ((*t.stopper)["process"]["exit"]["reason"], "exit");
  EXPECT_EQ((*t.stopper)["process"]["ppid"], (*t.parent)["process"]["pid"]);
  EXPECT_EQ((*t.parent)["process"]["exit"]["status"], 0);
  for (const json* target : t.targets) EXPECT_EQ((*target)["process"]["exit"]["status"], 0);
}

TEST(ProcessTree, ForksThreadsGroupStopsVforkAndExecFromAThreadAreAllTraced) {
  for (std::string backend : {"ptrace", "bpf"}) {
    SCOPED_TRACE(backend);
    if (backend == "bpf" && !BpfUnavailable().empty()) continue;  // bpf_test says why
    TempDir dir;
    Profile p = ProfileProgram(dir, {"process_tree_static", ProgramPath("exec_target_static")},
                               {"--backend", backend});
    ExpectWholeTree(p, backend);
  }
}

// Twenty trees, four at a time, each under `timeout -s KILL`: a hang shows
// as exit 137, not as a test run that never ends.
TEST(ProcessTree, TwentyTreesAtOnceNeverHang) {
  constexpr int kTrees = 20, kAtOnce = 4;
  std::vector<std::unique_ptr<TempDir>> dirs;
  for (int i = 0; i < kTrees; ++i) dirs.push_back(std::make_unique<TempDir>());
  std::string script;
  for (int i = 0; i < kTrees; ++i) {
    script += "timeout -s KILL 60 " + PagewastePath() + " run --no-compress -o " + dirs[i]->path() +
              "/t.%p.trace -- " + ProgramPath("process_tree_static") + " " +
              ProgramPath("exec_target_static") + " >" + dirs[i]->path() + "/out 2>" +
              dirs[i]->path() + "/err; echo $? >" + dirs[i]->path() + "/code &\n";
    if (i % kAtOnce == kAtOnce - 1) script += "wait\n";
  }
  CommandResult r = RunCapture({"sh", "-c", script + "wait\n"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (int i = 0; i < kTrees; ++i) {
    const std::string& d = dirs[i]->path();
    CommandResult code = RunCapture({"cat", d + "/code", d + "/out"});
    EXPECT_EQ(code.out, "0\ntree ok\n") << "tree " << i << ": " << RunCapture({"cat", d + "/err"}).out;
    int traces = 0;
    for (const std::string& f : dirs[i]->Files()) traces += f.find(".trace") != std::string::npos;
    EXPECT_EQ(traces, 6) << "tree " << i;
  }
}

// The Zig 0.11 compiler is static, starts threads and a child process: under
// TRACEME it hung for good. With a cache of its own, it compiles the
// standard library too (about 7 s alone).
TEST(ProcessTree, TheZigCompilerBuildsAProgramUnderTheTracer) {
  std::string zig = PAGEWASTE_ZIG_PATH;
  if (zig.empty()) GTEST_SKIP() << "no zig at build time (make test fetches it)";
  TempDir dir, cache;
  std::string out = cache.path() + "/page_alloc";
  CommandResult r = RunCapture(
      {"timeout", "-s", "KILL", "300", PagewastePath(), "run", "-o", dir.path() + "/%e.%p.trace",
       "--", zig, "build-exe", std::string(PAGEWASTE_TEST_SOURCES) + "/page_alloc.zig",
       "--cache-dir", cache.path(), "--global-cache-dir", cache.path(), "-femit-bin=" + out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("statically linked"), std::string::npos) << r.err;
  EXPECT_EQ(RunCapture({out}).exit_code, 0);
  std::vector<std::string> traces = dir.Files();
  ASSERT_GE(traces.size(), 1u);
  for (const std::string& trace : traces) {
    CommandResult report = RunCapture({PagewastePath(), "report", "--format", "json", trace});
    EXPECT_EQ(report.exit_code, 0) << trace << ": " << report.err;
    json j = ParseReport(report.out);
    EXPECT_EQ(j["trace"]["status"], "complete") << trace;
    EXPECT_EQ(j["process"]["backend"], StaticBackend()) << trace;
  }
}

TEST(ProcessTree, SigtermEndsRecordingAndTheProgramDecidesWhatItDoes) {
  TempDir dir;
  std::string trace = dir.path() + "/survivor.trace";
  auto [tracer, program] = StartTraced(trace, "term_survivor_static", "ptrace");
  ASSERT_NE(program, 0) << "the program never started";
  // Wait for the program's one mapping before the signal: the trace is
  // written as it goes.
  int site = SiteLine("term_survivor.c", "mmap");
  for (int i = 0; i < 100; ++i) {
    if (RunCapture({PagewastePath(), "dump", trace}).out.find("\nmmap ") != std::string::npos) break;
    usleep(20000);
  }
  kill(tracer, SIGTERM);
  int status = 0;
  ASSERT_EQ(waitpid(tracer, &status, 0), tracer);
  // The program survived SIGTERM, mapped 10 more pages untraced and exited
  // 5: pagewaste exits with its status.
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 5);
  CommandResult report = RunCapture({PagewastePath(), "report", "--format", "json", trace});
  ASSERT_EQ(report.exit_code, 0) << report.err;
  json r = ParseReport(report.out);
  EXPECT_EQ(r["process"]["exit"]["reason"], "detach");
  EXPECT_EQ(r["trace"]["status"], "complete");
  EXPECT_EQ(SumAtSite(r, "term_survivor.c", site, "mappings"), 1u);
}

TEST(ProcessTree, SigtermEndsAProgramThatDoesNotHandleIt) {
  for (std::string backend : {"ptrace", "bpf"}) {
    SCOPED_TRACE(backend);
    if (backend == "bpf" && !BpfUnavailable().empty()) continue;  // bpf_test says why
    TempDir dir;
    std::string trace = dir.path() + "/sleeper.trace";
    auto [tracer, program] = StartTraced(trace, "sleeper_static", backend);
    ASSERT_NE(program, 0) << "the program never started";
    // Once it sleeps (clock_nanosleep, 230), its page is mapped.
    for (int i = 0; i < 500; ++i) {
      std::ifstream syscall("/proc/" + std::to_string(program) + "/syscall");
      std::string nr;
      if (syscall >> nr && nr == "230") break;
      usleep(10000);
    }
    kill(tracer, SIGTERM);
    int status = 0;
    ASSERT_EQ(waitpid(tracer, &status, 0), tracer);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 128 + SIGTERM);
    CommandResult report = RunCapture({PagewastePath(), "report", "--format", "json", trace});
    ASSERT_EQ(report.exit_code, 0) << report.err;
    json r = ParseReport(report.out);
    EXPECT_EQ(r["process"]["backend"], backend);
    EXPECT_EQ(r["process"]["exit"]["reason"], "detach");
    EXPECT_EQ(r["summary"]["mappings"], 1);
  }
}

// Two runs with one -o path: the second, finding the first's trace in use,
// takes its own name; a third, after both have ended, replaces the first's.
TEST(TraceFiles, TwoRunsAtOnceWithOnePathKeepTwoTraces) {
  TempDir dir;
  std::string trace = dir.path() + "/same.trace";
  auto [tracer, program] = StartTraced(trace, "sleeper_static", "ptrace");
  ASSERT_NE(program, 0) << "the program never started";
  CommandResult second =
      RunCapture({PagewastePath(), "run", "-o", trace, "--", ProgramPath("mmap_two_bytes")});
  EXPECT_EQ(second.exit_code, 0) << second.err;
  EXPECT_NE(second.err.find(dir.path() + "/same.1.trace"), std::string::npos) << second.err;
  kill(tracer, SIGTERM);
  int status = 0;
  ASSERT_EQ(waitpid(tracer, &status, 0), tracer);
  auto report = [](const std::string& path) {
    CommandResult r = RunCapture({PagewastePath(), "report", "--format", "json", path});
    EXPECT_EQ(r.exit_code, 0) << path << ": " << r.err;
    return r.exit_code == 0 ? ParseReport(r.out) : json::object();
  };
  json first = report(trace), other = report(dir.path() + "/same.1.trace");
  EXPECT_EQ(first["trace"]["status"], "complete");
  EXPECT_EQ(first["summary"]["mappings"], 1);  // the sleeper's page
  EXPECT_EQ(other["trace"]["status"], "complete");
  EXPECT_EQ(other["summary"]["mappings"], 1000);
  // Both runs have ended: the next one replaces the file at the path.
  CommandResult third =
      RunCapture({PagewastePath(), "run", "-o", trace, "--", ProgramPath("mmap_two_bytes")});
  EXPECT_EQ(third.exit_code, 0) << third.err;
  EXPECT_EQ(report(trace)["summary"]["mappings"], 1000);
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/same.2.trace"));
}

const json* ReportOf(const Profile& p, const std::string& exe_name) {
  for (const json& r : p.reports) {
    std::string exe = r["process"]["exe"];
    if (exe.size() >= exe_name.size() && exe.compare(exe.size() - exe_name.size(), exe_name.size(), exe_name) == 0)
      return &r;
  }
  return nullptr;
}

TEST(PreloadTree, ADynamicProgramThatExecsAStaticOneLeavesATraceForEachImage) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"fork_exec", ProgramPath("exec_target_static")});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  ASSERT_EQ(p.reports.size(), 3u) << p.run.err;
  int preload = 0;
  for (const json& r : p.reports) {
    EXPECT_EQ(r["trace"]["status"], "complete");
    preload += r["process"]["backend"] == "preload";
  }
  EXPECT_EQ(preload, 2);  // the parent and its forked child
  const json* target = ReportOf(p, "/exec_target_static");
  ASSERT_NE(target, nullptr);
  EXPECT_EQ((*target)["process"]["backend"], StaticBackend());
  EXPECT_EQ((*target)["process"]["exit"]["reason"], "exit");
  EXPECT_EQ((*target)["process"]["exit"]["status"], 0);
  // The static image sets up its heap with brk: the tracer saw its calls.
  EXPECT_GT((*target)["summary"]["syscalls"]["brk"].get<uint64_t>(), 0u);
}

TEST(PreloadTree, AShellScriptCallingAStaticProgramTracesIt) {
  TempDir dir;
  Profile p = ProfileProgram(
      dir, {"sh", "-c", ProgramPath("mmap_two_bytes_static") + " && echo static done"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  EXPECT_EQ(p.run.out, "static done\n");
  const json* r = ReportOf(p, "/mmap_two_bytes_static");
  ASSERT_NE(r, nullptr) << p.run.err;
  EXPECT_EQ((*r)["process"]["backend"], StaticBackend());
  EXPECT_EQ((*r)["trace"]["status"], "complete");
  int map_line = SiteLine("mmap_two_bytes.c", "mmap");
  EXPECT_EQ(SumAtSite(*r, "mmap_two_bytes.c", map_line, "mappings"), 1000u);
  EXPECT_EQ(SumAtSite(*r, "mmap_two_bytes.c", map_line, "page_waste_bytes"), 4094000u);
  EXPECT_EQ(SyscallsAtSite(*r, "mmap_two_bytes.c", map_line, "mmap"), 1000u);
}

TEST(PreloadTree, AProcessEndingWithItsOwnExitGroupHasACompleteTrace) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"raw_exit", "3"});
  EXPECT_EQ(p.run.exit_code, 3) << p.run.err;
  const json& r = OnlyReport(p);
  EXPECT_EQ(r["trace"]["status"], "complete");
  EXPECT_EQ(r["process"]["exit"]["reason"], "raw_exit");
  EXPECT_EQ(r["process"]["exit"]["status"], 3);
  EXPECT_EQ(SumAtSite(r, "raw_exit.c", SiteLine("raw_exit.c", "malloc"), "allocations"), 25u);
  EXPECT_EQ(SumAtSite(r, "raw_exit.c", SiteLine("raw_exit.c", "mmap"), "mappings"), 5u);
  EXPECT_EQ(SumAtSite(r, "raw_exit.c", SiteLine("raw_exit.c", "mmap"), "page_waste_bytes"),
            5u * 4094);
}

// A program that leaves a process running behind it (a daemon, a
// background job) returns as it would without pagewaste: run does not wait
// for what it left, which goes on untraced.
TEST(PreloadTree, ABackgroundProcessLeftRunningDoesNotHoldRunBack) {
  TempDir dir;
  auto start = std::chrono::steady_clock::now();
  CommandResult r = RunCapture({"timeout", "-s", "KILL", "20", PagewastePath(), "run", "-o",
                                dir.path() + "/%p.trace", "--", "sh", "-c", "sleep 30 & echo $!"});
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  pid_t sleeper = static_cast<pid_t>(std::stol(r.out));
  EXPECT_LT(seconds, 10.0);
  EXPECT_NE(r.err.find("sh exited; the 1 process it left running goes on untraced"),
            std::string::npos)
      << r.err;
  // Still running, and no longer traced by anyone.
  std::string status = RunCapture({"cat", "/proc/" + std::to_string(sleeper) + "/status"}).out;
  EXPECT_NE(status.find("TracerPid:\t0\n"), std::string::npos) << status;
  kill(sleeper, SIGKILL);
}

// Debian's go is dynamically linked (cgo), and its runtime leaves with a raw
// exit_group; the compiler and linker it runs are static.
TEST(PreloadTree, GoBuildLeavesACompleteTraceForEveryProcess) {
  if (RunCapture({"sh", "-c", "command -v go"}).exit_code != 0) GTEST_SKIP() << "no go";
  TempDir dir, cache;
  std::string module = std::string(PAGEWASTE_TEST_SOURCES) + "/go_maps";
  CommandResult r = RunCapture(
      {"env", "GOCACHE=" + cache.path(), "GOFLAGS=-mod=mod", "CGO_ENABLED=0", "sh", "-c",
       "cd " + module + " && timeout -s KILL 300 " + PagewastePath() + " run -o " + dir.path() +
           "/%e.%p.trace -- go build -o " + cache.path() + "/go_maps_built ."});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(RunCapture({cache.path() + "/go_maps_built"}).out, "500\n");
  std::map<std::string, int> by_name;
  for (const std::string& trace : dir.Files()) {
    CommandResult report = RunCapture({PagewastePath(), "report", "--format", "json", trace});
    EXPECT_EQ(report.exit_code, 0) << trace << ": " << report.err;
    json j = ParseReport(report.out);
    std::string exe = j["process"]["exe"];
    std::string name = exe.substr(exe.rfind('/') + 1);
    ++by_name[name];
    EXPECT_EQ(j["trace"]["status"], "complete") << trace;
    // go (and git, which it asks about the module) are dynamic, the tools static.
    if (name == "go") EXPECT_EQ(j["process"]["backend"], "preload") << trace;
    if (name == "compile" || name == "asm" || name == "link")
      EXPECT_EQ(j["process"]["backend"], StaticBackend()) << trace;
  }
  EXPECT_EQ(by_name["go"], 1) << r.err;
  EXPECT_GE(by_name["compile"], 1) << r.err;
  EXPECT_GE(by_name["link"], 1) << r.err;
}

TEST(PreloadTree, GoVersionEndsWithARawExitNotATruncatedTrace) {
  if (RunCapture({"sh", "-c", "command -v go"}).exit_code != 0) GTEST_SKIP() << "no go";
  TempDir dir;
  Profile p = ProfileProgram(dir, {"go", "version"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  EXPECT_EQ(p.run.out.rfind("go version go", 0), 0u) << p.run.out;
  const json& r = OnlyReport(p);
  EXPECT_EQ(r["trace"]["status"], "complete");
  EXPECT_EQ(r["process"]["exit"]["reason"], "raw_exit");
  EXPECT_EQ(r["process"]["exit"]["status"], 0);
}

}  // namespace
}  // namespace pagewaste::e2e

namespace pagewaste::e2e {
namespace {

// A test suite's worth of short processes (short_tree.c: the root and 200
// descendants, one at a time): the combined report of all their traces has
// every figure of their own reports summed, and, as no two of them held
// pages at once, the peak the largest of them reached alone.
TEST(ProcessTree, TheCombinedReportOfTwoHundredProcessesIsTheirReportsSummed) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"short_tree"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  ASSERT_EQ(p.traces.size(), 201u) << p.run.err;
  const std::vector<std::string> counted = {
      "allocations", "frees", "mappings", "unmappings", "requested_bytes",
      "page_bytes", "page_waste_bytes", "leaked_bytes", "leaked_allocations"};
  std::map<std::string, uint64_t> sum, syscalls;
  uint64_t largest_peak = 0;
  for (const json& r : p.reports) {
    const json& s = r["summary"];
    for (const std::string& figure : counted) sum[figure] += s[figure].get<uint64_t>();
    for (const auto& [kind, n] : s["syscalls"].items()) syscalls[kind] += n.get<uint64_t>();
    largest_peak = std::max(largest_peak, s["peak_page_bytes"].get<uint64_t>());
  }
  // run lists the 10 traces with the most waste and sums them all.
  size_t listed = 0;
  for (size_t at = 0; (at = p.run.err.find("(short_tree, pid ", at)) != std::string::npos; ++at)
    ++listed;
  EXPECT_EQ(listed, 10u) << p.run.err;
  EXPECT_NE(p.run.err.find("  and 191 traces not listed"), std::string::npos) << p.run.err;
  EXPECT_NE(p.run.err.find("pagewaste: in all, 201 traces: " +
                           GroupDigits(sum["allocations"]) +
                           (sum["allocations"] == 1 ? " allocation" : " allocations") +
                           ", 500 mappings, " +
                           "2,048,000 B in pages, 1,998,000 B page-rounding waste, " +
                           GroupDigits(syscalls["total"]) + " syscalls\n"),
            std::string::npos)
      << p.run.err;
  // The program's own figures, by hand (short_tree.c).
  EXPECT_EQ(sum["mappings"], 500u);
  EXPECT_EQ(sum["unmappings"], 500u);
  EXPECT_EQ(sum["page_waste_bytes"], 500u * 3996);
  EXPECT_EQ(sum["page_bytes"], 500u * 4096);
  EXPECT_EQ(largest_peak, 16384u);

  std::vector<std::string> argv = {PagewastePath(), "report", "--format", "json"};
  argv.insert(argv.end(), p.traces.begin(), p.traces.end());
  CommandResult all = RunCapture(argv);
  ASSERT_EQ(all.exit_code, 0) << all.err;
  json doc = json::parse(all.out);
  json combined = Expanded(doc, doc["combined"]);
  EXPECT_EQ(combined["processes"], 201);
  EXPECT_EQ(combined["lost"]["incomplete_traces"], 0);
  for (const std::string& figure : counted)
    EXPECT_EQ(combined["summary"][figure], sum[figure]) << figure;
  for (const auto& [kind, n] : syscalls) EXPECT_EQ(combined["summary"]["syscalls"][kind], n) << kind;
  EXPECT_EQ(combined["summary"]["peak_page_bytes"], largest_peak);
  EXPECT_EQ(combined["peak"]["processes"].size(), 1u);
  // The mappings are two sites (from a child, from a grandchild), each
  // merged across its processes.
  int line = SiteLine("short_tree.c", "tree_page");
  EXPECT_EQ(SumAtSite(combined, "short_tree.c", line, "mappings"), 500u);
  EXPECT_EQ(SumAtSite(combined, "short_tree.c", line, "processes"), 200u);
  EXPECT_EQ(SumAtSite(combined, "short_tree.c", line, "page_waste_bytes"), 1998000u);

  // check reads the same combined figures.
  std::string budget = dir.path() + "/budget.json";
  std::ofstream(budget) << R"({"limits": [{"metric": "mappings", "max": 499},
                                          {"metric": "peak_page_bytes", "max": "16K"}]})";
  argv = {PagewastePath(), "check", "--budget", budget};
  argv.insert(argv.end(), p.traces.begin(), p.traces.end());
  CommandResult check = RunCapture(argv);
  EXPECT_EQ(check.exit_code, 1) << check.err;
  EXPECT_NE(check.out.find("FAIL mappings (whole run): 500 > limit 499"), std::string::npos)
      << check.out;
  EXPECT_NE(check.out.find("ok   peak_page_bytes (whole run): 16,384 B <= limit 16,384 B"),
            std::string::npos)
      << check.out;
}

}  // namespace
}  // namespace pagewaste::e2e
