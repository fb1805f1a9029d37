// End-to-end: real programs from tests/programs run under `pagewaste run`,
// with exact figures asserted on the JSON report.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>

#include "e2e_support.h"

namespace pagewaste::e2e {
namespace {

using nlohmann::json;

TEST(EndToEnd, CountsEveryMallocAtItsCallSite) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"malloc_count"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  const json& r = OnlyReport(p);
  int line = SiteLine("malloc_count.c", "malloc");
  EXPECT_EQ(SumAtSite(r, "malloc_count.c", line, "allocations"), 1234u);
  EXPECT_EQ(SumAtSite(r, "malloc_count.c", line, "requested_bytes"), 1234u * 40);
  EXPECT_EQ(SumAtSite(r, "malloc_count.c", line, "frees"), 1234u);
  EXPECT_EQ(SumAtSite(r, "malloc_count.c", line, "page_waste_bytes"), 0u);
  EXPECT_EQ(SumAtSite(r, "malloc_count.c", line, "leaked_bytes"), 0u);
  const json* site = FindSite(r, "malloc_count.c", line);
  ASSERT_NE(site, nullptr);
  EXPECT_EQ((*site)["frames"][0]["function"], "main");
  EXPECT_EQ(r["trace"]["status"], "complete");
  EXPECT_EQ(r["process"]["exit"]["reason"], "exit");
  EXPECT_EQ(r["process"]["exit"]["status"], 0);
}

TEST(EndToEnd, TwoByteMappingsWasteAllButTwoBytesOfEachPage) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"mmap_two_bytes"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  const json& r = OnlyReport(p);
  ASSERT_EQ(r["process"]["page_size"], 4096) << "the figures below are for 4 KiB pages";
  int map_line = SiteLine("mmap_two_bytes.c", "mmap");
  int unmap_line = SiteLine("mmap_two_bytes.c", "munmap");
  EXPECT_EQ(SumAtSite(r, "mmap_two_bytes.c", map_line, "mappings"), 1000u);
  EXPECT_EQ(SumAtSite(r, "mmap_two_bytes.c", map_line, "requested_bytes"), 2000u);
  EXPECT_EQ(SumAtSite(r, "mmap_two_bytes.c", map_line, "page_bytes"), 4096000u);
  EXPECT_EQ(SumAtSite(r, "mmap_two_bytes.c", map_line, "page_waste_bytes"), 4094000u);
  EXPECT_EQ(SyscallsAtSite(r, "mmap_two_bytes.c", map_line, "mmap"), 1000u);
  EXPECT_EQ(SumAtSite(r, "mmap_two_bytes.c", unmap_line, "unmappings"), 1000u);
  EXPECT_EQ(SyscallsAtSite(r, "mmap_two_bytes.c", unmap_line, "munmap"), 1000u);
  const json& s = r["summary"];
  EXPECT_EQ(s["mappings"], 1000);
  EXPECT_EQ(s["unmappings"], 1000);
  EXPECT_EQ(s["page_waste_bytes"], 4094000);
  EXPECT_EQ(s["syscalls"]["mmap"], 1000);
  EXPECT_EQ(s["syscalls"]["munmap"], 1000);
  EXPECT_EQ(s["peak_page_bytes"], 4096000);
  // The top call site by waste is the mmap line.
  ASSERT_FALSE(r["call_sites"].empty());
  EXPECT_EQ(r["call_sites"][0]["page_waste_bytes"], 4094000);
}

TEST(EndToEnd, ACompressedTraceReportsWhatThePlainOneDoes) {
  // `run` rewrites each closed trace with zstd after the program exits;
  // --no-compress leaves it as the shim wrote it. The same deterministic
  // program both ways: the same figures, from a fraction of the bytes.
  TempDir plain_dir, compressed_dir;
  Profile plain = ProfileProgram(plain_dir, {"mmap_two_bytes"}, {"--no-compress"});
  Profile compressed = ProfileProgram(compressed_dir, {"mmap_two_bytes"});
  ASSERT_EQ(plain.traces.size(), 1u);
  ASSERT_EQ(compressed.traces.size(), 1u);
  const json& a = OnlyReport(plain);
  const json& b = OnlyReport(compressed);
  EXPECT_EQ(b["trace"]["status"], "complete");
  EXPECT_EQ(a["trace"]["events"], b["trace"]["events"]);
  EXPECT_EQ(b["summary"]["page_waste_bytes"], 4094000);
  for (const char* key : {"mappings", "unmappings", "page_bytes", "page_waste_bytes", "syscalls",
                          "peak_page_bytes"})
    EXPECT_EQ(a["summary"][key], b["summary"][key]) << key;
  ASSERT_EQ(a["call_sites"].size(), b["call_sites"].size());
  for (size_t i = 0; i < a["call_sites"].size(); ++i) {
    const json& fa = a["call_sites"][i]["frames"];
    const json& fb = b["call_sites"][i]["frames"];
    ASSERT_EQ(fa.size(), fb.size());
    for (size_t f = 0; f < fa.size(); ++f)  // addresses differ: ASLR
      for (const char* key : {"function", "file", "line", "module_offset"})
        EXPECT_EQ(fa[f][key], fb[f][key]) << "site " << i << " frame " << f << " " << key;
  }
  struct stat plain_st, compressed_st;
  ASSERT_EQ(stat(plain.traces[0].c_str(), &plain_st), 0);
  ASSERT_EQ(stat(compressed.traces[0].c_str(), &compressed_st), 0);
  EXPECT_LT(compressed_st.st_size * 4, plain_st.st_size)
      << compressed_st.st_size << " vs " << plain_st.st_size;
}

// Every call site's stack as (function, line) frames, with its allocations.
std::map<std::vector<std::pair<std::string, int>>, uint64_t> StacksOf(const json& report) {
  std::map<std::vector<std::pair<std::string, int>>, uint64_t> stacks;
  for (const json& site : report["call_sites"]) {
    std::vector<std::pair<std::string, int>> frames;
    for (const json& f : site["frames"]) frames.push_back({f["function"], f["line"]});
    stacks[frames] += site["allocations"].get<uint64_t>();
  }
  return stacks;
}

TEST(EndToEnd, TheShimsUnwinderAgreesWithLibunwind) {
  // unwind_o2.c, -O2 without frame pointers: recursion to 17 depths, a
  // frame whose CFA comes from rbp, allocations in a signal handler. The
  // same run unwound by libunwind alone must give the same stacks.
  TempDir fast_dir, slow_dir;
  Profile fast = ProfileProgram(fast_dir, {"unwind_o2"});
  setenv("PAGEWASTE_UNWIND", "libunwind", 1);
  Profile slow = ProfileProgram(slow_dir, {"unwind_o2"});
  unsetenv("PAGEWASTE_UNWIND");
  ASSERT_EQ(fast.run.exit_code, 0) << fast.run.err;
  ASSERT_EQ(slow.run.exit_code, 0) << slow.run.err;
  auto fast_stacks = StacksOf(OnlyReport(fast));
  auto slow_stacks = StacksOf(OnlyReport(slow));
  EXPECT_EQ(fast_stacks, slow_stacks);
  // 3,000 down(), 1,000 with_vla(), 6 in the handler. down(0) tail-calls
  // leaf (a jmp, no frame of its own): 177 of the 3,000 (i % 17 == 0) show
  // leaf right under main, in both.
  uint64_t down_calls = 0, vla_calls = 0, handler_calls = 0, tail_calls = 0;
  for (const auto& [frames, allocations] : fast_stacks) {
    auto has = [&](const char* name) {
      for (const auto& f : frames)
        if (f.first == name) return true;
      return false;
    };
    if (has("on_usr1")) handler_calls += allocations;
    else if (has("with_vla")) vla_calls += allocations;
    else if (has("down")) down_calls += allocations;
    else if (frames.size() > 1 && frames[0].first == "leaf" && frames[1].first == "main")
      tail_calls += allocations;
  }
  EXPECT_EQ(down_calls, 3000u - 177);
  EXPECT_EQ(tail_calls, 177u);
  EXPECT_EQ(vla_calls, 1000u);
  EXPECT_EQ(handler_calls, 6u);
}

TEST(EndToEnd, LargeMallocsPayForTheirOwnPages) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"large_malloc"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  const json& r = OnlyReport(p);
  ASSERT_EQ(r["process"]["page_size"], 4096);
  int line = SiteLine("large_malloc.c", "large");
  // glibc maps 200,000 bytes + its 16-byte chunk header + 8 bytes of size
  // rounding = 200,024 -> 49 pages = 200,704 bytes; 704 bytes wasted each.
  EXPECT_EQ(SumAtSite(r, "large_malloc.c", line, "allocations"), 10u);
  EXPECT_EQ(SumAtSite(r, "large_malloc.c", line, "own_mappings"), 10u);
  EXPECT_EQ(SumAtSite(r, "large_malloc.c", line, "page_bytes"), 10u * 200704);
  EXPECT_EQ(SumAtSite(r, "large_malloc.c", line, "page_waste_bytes"), 10u * 704);
}

TEST(EndToEnd, CxxNewIsCountedAndDemangled) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"cxx_new"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  const json& r = OnlyReport(p);
  int line = SiteLine("cxx_new.cpp", "new");
  EXPECT_EQ(SumAtSite(r, "cxx_new.cpp", line, "allocations"), 500u);
  EXPECT_EQ(SumAtSite(r, "cxx_new.cpp", line, "frees"), 500u);
  EXPECT_EQ(SumAtSite(r, "cxx_new.cpp", line, "requested_bytes"), 500u * 32);
  const json* site = FindSite(r, "cxx_new.cpp", line);
  ASSERT_NE(site, nullptr);
  bool demangled = false;
  for (const auto& f : (*site)["frames"])
    if (f["function"] == "shapes::make_widget(int)" && f["line"] == line) demangled = true;
  EXPECT_TRUE(demangled) << site->dump(2);
  // operator new itself is on the stack, above the program's frame.
  EXPECT_NE((*site)["frames"][0]["function"].get<std::string>().find("operator new"),
            std::string::npos);
}

TEST(EndToEnd, EightThreadsCountExactly) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"threads"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  const json& r = OnlyReport(p);
  int line = SiteLine("threads.c", "worker");
  EXPECT_EQ(SumAtSite(r, "threads.c", line, "allocations"), 400000u);
  EXPECT_EQ(SumAtSite(r, "threads.c", line, "frees"), 400000u);
  EXPECT_GE(r["process"]["threads"].get<int>(), 8);
}

TEST(EndToEnd, ForkAndExecEachGetTheirOwnTrace) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"fork_exec", ProgramPath("exec_target")});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  ASSERT_EQ(p.reports.size(), 3u) << p.run.err;
  int alloc_line = SiteLine("fork_exec.c", "allocate");
  int target_line = SiteLine("exec_target.c", "target");
  const json *parent = nullptr, *child = nullptr, *target = nullptr;
  for (const json& r : p.reports) {
    std::string exe = r["process"]["exe"];
    if (exe.find("exec_target") != std::string::npos) target = &r;
    else if (r["process"]["exit"]["reason"] == "exec") parent = &r;
    else child = &r;
  }
  ASSERT_TRUE(parent && child && target);
  EXPECT_EQ(SumAtSite(*parent, "fork_exec.c", alloc_line, "allocations"), 11u);
  EXPECT_EQ(SumAtSite(*child, "fork_exec.c", alloc_line, "allocations"), 22u);
  EXPECT_EQ(SumAtSite(*target, "exec_target.c", target_line, "allocations"), 33u);
  EXPECT_EQ((*child)["process"]["ppid"], (*parent)["process"]["pid"]);
  EXPECT_EQ((*target)["process"]["pid"], (*parent)["process"]["pid"]);
  for (const json& r : p.reports) EXPECT_EQ(r["trace"]["status"], "complete");
}

TEST(EndToEnd, AFailedExecTakesBackTheEndRecordAndTracingGoesOn) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"fork_exec", dir.path() + "/no-such-target"});
  EXPECT_EQ(p.run.exit_code, 3) << p.run.err;
  ASSERT_EQ(p.reports.size(), 2u);
  int line = SiteLine("fork_exec.c", "allocate");
  const json& parent = p.reports[0]["process"]["ppid"] == p.reports[1]["process"]["pid"]
                           ? p.reports[1] : p.reports[0];
  EXPECT_EQ(parent["trace"]["status"], "complete");
  EXPECT_EQ(parent["process"]["exit"]["reason"], "exit");
  EXPECT_EQ(parent["process"]["exit"]["status"], 3);
  EXPECT_EQ(SumAtSite(parent, "fork_exec.c", line, "allocations"), 11u + 4u);
}

struct ExitCase {
  const char* how;
  const char* status;
  int exit_code;
  const char* reason;
  int recorded_status;
};

void PrintTo(const ExitCase& c, std::ostream* os) { *os << c.how << " " << c.status; }

class ExitPaths : public ::testing::TestWithParam<ExitCase> {};

TEST_P(ExitPaths, FlushWhatWasRecordedAndPassTheStatusThrough) {
  const ExitCase& c = GetParam();
  TempDir dir;
  Profile p = ProfileProgram(dir, {"exit_paths", c.how, c.status});
  EXPECT_EQ(p.run.exit_code, c.exit_code) << p.run.err;
  const json& r = OnlyReport(p);
  EXPECT_EQ(r["trace"]["status"], "complete");
  EXPECT_EQ(r["process"]["exit"]["reason"], c.reason);
  EXPECT_EQ(r["process"]["exit"]["status"], c.recorded_status);
  int line = SiteLine("exit_paths.c", "kept");
  EXPECT_EQ(SumAtSite(r, "exit_paths.c", line, "allocations"), 5u);
  EXPECT_EQ(SumAtSite(r, "exit_paths.c", line, "leaked_allocations"), 5u);
  EXPECT_EQ(SumAtSite(r, "exit_paths.c", line, "leaked_bytes"), 5u * 64);
}

INSTANTIATE_TEST_SUITE_P(
    AllWays, ExitPaths,
    ::testing::Values(ExitCase{"return", "0", 0, "exit", 0}, ExitCase{"return", "9", 9, "exit", 9},
                      ExitCase{"exit", "7", 7, "exit", 7}, ExitCase{"_exit", "3", 3, "_exit", 3},
                      ExitCase{"abort", "0", 128 + 6, "signal", 6}),
    [](const auto& info) {
      std::string name = std::string(info.param.how) + "_" + info.param.status;
      for (char& ch : name)
        if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
      return name;
    });

TEST(EndToEnd, SurvivesAProgramThatClosesAndReplacesDescriptors) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"fd_hostile"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  const json& r = OnlyReport(p);
  EXPECT_EQ(r["trace"]["status"], "complete");
  EXPECT_EQ(SumAtSite(r, "fd_hostile.c", SiteLine("fd_hostile.c", "before"), "allocations"), 100u);
  EXPECT_EQ(SumAtSite(r, "fd_hostile.c", SiteLine("fd_hostile.c", "after"), "allocations"), 100u);
}

TEST(EndToEnd, MissingOrNonExecutableProgramExitsLikeAShell) {
  TempDir dir;
  CommandResult missing = RunCapture({PagewastePath(), "run", "-o", dir.path() + "/x.trace", "--",
                                      dir.path() + "/no-such-program"});
  EXPECT_EQ(missing.exit_code, 127);
  EXPECT_NE(missing.err.find("command not found"), std::string::npos) << missing.err;
  std::string plain = dir.path() + "/not-executable";
  std::ofstream(plain) << "data\n";
  chmod(plain.c_str(), 0644);
  CommandResult denied =
      RunCapture({PagewastePath(), "run", "-o", dir.path() + "/x.trace", "--", plain});
  EXPECT_EQ(denied.exit_code, 126);
  EXPECT_NE(denied.err.find("Permission denied"), std::string::npos) << denied.err;
  // Each says so in one line.
  EXPECT_EQ(std::count(missing.err.begin(), missing.err.end(), '\n'), 1);
}

TEST(EndToEnd, StdioPassesThrough) {
  TempDir dir;
  CommandResult r = RunCapture({PagewastePath(), "run", "-o", dir.path() + "/%p.trace", "--", "sh",
                                "-c", "echo out; echo err >&2; exit 4"});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err.rfind("err\n", 0), 0u) << r.err;
}

TEST(EndToEnd, DlopenedLibrarySymbolizesFromTheModuleMap) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"dlopen_plugin", ProgramPath("plugin.so")});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  const json& r = OnlyReport(p);
  int line = SiteLine("plugin.c", "plugin");
  EXPECT_EQ(SumAtSite(r, "plugin.c", line, "allocations"), 77u);
  const json* site = FindSite(r, "plugin.c", line);
  ASSERT_NE(site, nullptr);
  EXPECT_EQ((*site)["frames"][0]["function"], "plugin_allocate");
  EXPECT_NE((*site)["frames"][0]["module"].get<std::string>().find("plugin.so"), std::string::npos);
}

// True if some call site of the report has a frame with a source line.
bool HasSourceLine(const json& report, const std::string& file_suffix = "") {
  for (const auto& site : report["call_sites"])
    for (const auto& f : site["frames"]) {
      std::string file = f["file"];
      if (f["line"].get<int>() > 0 && file.size() >= file_suffix.size() &&
          file.compare(file.size() - file_suffix.size(), file_suffix.size(), file_suffix) == 0)
        return true;
    }
  return false;
}

TEST(RealPrograms, PythonScriptSymbolizesToInterpreterSourceLines) {
  if (RunCapture({"sh", "-c", "command -v python3"}).exit_code != 0)
    GTEST_SKIP() << "python3 is not installed";
  // The interpreter itself, not a wrapper script (pyenv's shims exec a
  // chain of shells first; those are followed too, but slow the test).
  CommandResult where = RunCapture({"python3", "-c", "import sys; print(sys.executable)"});
  std::string python_exe = where.out.substr(0, where.out.find('\n'));
  TempDir dir;
  Profile p = ProfileProgram(dir, {python_exe, std::string(PAGEWASTE_TEST_SOURCES) + "/alloc_script.py"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  EXPECT_EQ(p.run.out, "2000\n");
  ASSERT_EQ(p.reports.size(), 1u);
  const json* python = &p.reports[0];
  // The list building allocates thousands of times through CPython's C code.
  EXPECT_GT((*python)["summary"]["allocations"].get<uint64_t>(), 2000u);
  EXPECT_TRUE(HasSourceLine(*python, ".c")) << "no C source line in the python trace";
}

TEST(RealPrograms, ShellPipelineTracesEveryProcessWithSourceLines) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"/bin/sh", "-c", "seq 1 5000 | sort -rn | head -n 1"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  EXPECT_EQ(p.run.out, "5000\n");
  std::set<std::string> images;
  for (const json& r : p.reports) {
    // sort replaces the shim's SIGPIPE handler with its own, which re-raises
    // the signal when head exits first: its trace then has every event but
    // no End record.
    if (r["trace"]["status"] != "complete") {
      EXPECT_EQ(r["trace"]["status"], "truncated");
      EXPECT_NE(r["trace"]["message"].get<std::string>().find("no end record"), std::string::npos);
    }
    std::string exe = r["process"]["exe"];
    images.insert(exe.substr(exe.rfind('/') + 1));
    // Every image that allocated has C library frames with source lines
    // (libc6-dbg), even where the program itself is stripped.
    if (r["summary"]["allocations"].get<uint64_t>() > 0)
      EXPECT_TRUE(HasSourceLine(r)) << exe;
  }
  for (const char* image : {"dash", "seq", "sort", "head"}) EXPECT_TRUE(images.count(image)) << image;
}

TEST(Symbolization, FallsBackToSymbolTableThenModuleOffset) {
  TempDir dir;
  // Without DWARF: function names from the symbol table, no file:line.
  std::string no_debug = dir.path() + "/no_debug";
  ASSERT_EQ(RunCapture({"cp", ProgramPath("malloc_count"), no_debug}).exit_code, 0);
  ASSERT_EQ(RunCapture({"strip", "--strip-debug", no_debug}).exit_code, 0);
  // Without any symbols: module+offset.
  std::string stripped = dir.path() + "/stripped";
  ASSERT_EQ(RunCapture({"cp", ProgramPath("malloc_count"), stripped}).exit_code, 0);
  ASSERT_EQ(RunCapture({"strip", "--strip-all", stripped}).exit_code, 0);
  for (const std::string& program : {no_debug, stripped}) {
    TempDir traces;
    Profile p = ProfileProgram(traces, {program});
    ASSERT_EQ(p.reports.size(), 1u);
    const json* site = nullptr;
    for (const auto& s : p.reports[0]["call_sites"])
      if (s["allocations"] == 1234) site = &s;
    ASSERT_NE(site, nullptr) << program;
    const json& frame = (*site)["frames"][0];
    EXPECT_EQ(frame["file"], "");
    EXPECT_EQ(frame["module"], program);
    EXPECT_GT(frame["module_offset"].get<uint64_t>(), 0u);
    EXPECT_EQ(frame["function"], program == no_debug ? "main" : "");
  }
}

TEST(EndToEnd, AnExistingPreloadIsKeptAfterTheShim) {
  TempDir dir;
  setenv("LD_PRELOAD", "libm.so.6", 1);
  CommandResult r = RunCapture({PagewastePath(), "run", "-o", dir.path() + "/%p.trace", "--", "sh",
                                "-c", "echo \"$LD_PRELOAD\""});
  unsetenv("LD_PRELOAD");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("libpagewaste_preload.so:libm.so.6"), std::string::npos) << r.out;
}

TEST(EndToEnd, TheInstalledLayoutFindsItsShim) {
  TempDir dir;
  std::string prefix = dir.path() + "/prefix";
  CommandResult install =
      RunCapture({"cmake", "--install", PAGEWASTE_BUILD_DIR, "--prefix", prefix});
  ASSERT_EQ(install.exit_code, 0) << install.err;
  CommandResult r = RunCapture({prefix + "/bin/pagewaste", "run", "-o", dir.path() + "/t.trace",
                                "--", ProgramPath("malloc_count")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  CommandResult report =
      RunCapture({prefix + "/bin/pagewaste", "report", "--format", "json", dir.path() + "/t.trace"});
  ASSERT_EQ(report.exit_code, 0) << report.err;
  json j = ParseReport(report.out);
  EXPECT_EQ(SumAtSite(j, "malloc_count.c", SiteLine("malloc_count.c", "malloc"), "allocations"),
            1234u);
}

}  // namespace
}  // namespace pagewaste::e2e
