// Static programs, traced by the ptrace backend into the same
// format as the shim.
#include <gtest/gtest.h>

#include "e2e_support.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <sstream>

namespace pagewaste::e2e {
namespace {

using nlohmann::json;

// The ptrace backend for the static programs of tests run on both builds
// (auto would pick bpf as root); auto (preload) for the dynamic ones.
std::vector<std::string> PtraceIfStatic(const std::string& program) {
  bool is_static = program.ends_with("_static") || program == "page_alloc_zig";
  return is_static ? std::vector<std::string>{"--backend", "ptrace"} : std::vector<std::string>{};
}

// bpf where BPF programs may be loaded (root), ptrace elsewhere; run says
// which in one line, and why.
TEST(Ptrace, AutoPicksBpfOrPtraceForAStaticProgramAndSaysWhich) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"mmap_two_bytes_static"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  std::string why = BpfUnavailable();
  std::string said = "mmap_two_bytes_static is statically linked: no dynamic loader to preload "
                     "into; tracing it with " +
                     (why.empty() ? std::string("BPF\n") : "ptrace (not BPF: ");
  EXPECT_NE(p.run.err.find(said), std::string::npos) << p.run.err;
  const json& r = OnlyReport(p);
  EXPECT_EQ(r["process"]["backend"], StaticBackend());
  EXPECT_EQ(r["trace"]["status"], "complete");
  EXPECT_EQ(r["process"]["exit"]["reason"], "exit");
  EXPECT_EQ(r["process"]["exit"]["status"], 0);
}

TEST(Ptrace, AStaticBuildCountsExactlyWhatTheDynamicBuildDoesUnderTheShim) {
  TempDir static_dir, dynamic_dir;
  Profile s = ProfileProgram(static_dir, {"mmap_two_bytes_static"}, {"--backend", "ptrace"});
  Profile d = ProfileProgram(dynamic_dir, {"mmap_two_bytes"});
  ASSERT_EQ(s.run.exit_code, 0) << s.run.err;
  ASSERT_EQ(d.run.exit_code, 0) << d.run.err;
  const json& rs = OnlyReport(s);
  const json& rd = OnlyReport(d);
  EXPECT_EQ(rd["process"]["backend"], "preload");
  int map_line = SiteLine("mmap_two_bytes.c", "mmap");
  int unmap_line = SiteLine("mmap_two_bytes.c", "munmap");
  for (const char* field : {"mappings", "requested_bytes", "page_bytes", "page_waste_bytes"}) {
    EXPECT_EQ(SumAtSite(rs, "mmap_two_bytes.c", map_line, field),
              SumAtSite(rd, "mmap_two_bytes.c", map_line, field))
        << field;
  }
  EXPECT_EQ(SumAtSite(rs, "mmap_two_bytes.c", map_line, "mappings"), 1000u);
  EXPECT_EQ(SumAtSite(rs, "mmap_two_bytes.c", map_line, "page_waste_bytes"), 4094000u);
  EXPECT_EQ(SyscallsAtSite(rs, "mmap_two_bytes.c", map_line, "mmap"), 1000u);
  EXPECT_EQ(SyscallsAtSite(rs, "mmap_two_bytes.c", unmap_line, "munmap"),
            SyscallsAtSite(rd, "mmap_two_bytes.c", unmap_line, "munmap"));
  EXPECT_EQ(SumAtSite(rs, "mmap_two_bytes.c", unmap_line, "unmappings"), 1000u);
  EXPECT_EQ(rs["summary"]["page_waste_bytes"], rd["summary"]["page_waste_bytes"]);
}

TEST(Ptrace, AStaticProgramThatForksAndExecsGetsOneTracePerProcess) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"fork_exec_static", ProgramPath("exec_target_static")},
                             {"--backend", "ptrace"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  ASSERT_EQ(p.reports.size(), 3u) << p.run.err;
  const json *parent = nullptr, *child = nullptr, *target = nullptr;
  for (const json& r : p.reports) {
    EXPECT_EQ(r["process"]["backend"], "ptrace");
    EXPECT_EQ(r["trace"]["status"], "complete");
    std::string exe = r["process"]["exe"];
    if (exe.find("exec_target_static") != std::string::npos) target = &r;
    else if (r["process"]["exit"]["reason"] == "exec") parent = &r;
    else child = &r;
  }
  ASSERT_TRUE(parent && child && target);
  EXPECT_EQ((*child)["process"]["ppid"], (*parent)["process"]["pid"]);
  EXPECT_EQ((*target)["process"]["pid"], (*parent)["process"]["pid"]);
  // Each image sets up its own heap with brk; the forked child allocates
  // from the heap it inherited and makes no memory system call, yet it has
  // its trace, with its exit.
  for (const json* r : {parent, target})
    EXPECT_GT((*r)["summary"]["syscalls"]["brk"].get<uint64_t>(), 0u);
  EXPECT_EQ((*child)["summary"]["syscalls"]["total"], 0);
  EXPECT_EQ((*child)["process"]["exit"]["reason"], "exit");
  EXPECT_EQ((*child)["process"]["exit"]["status"], 0);
}

TEST(Ptrace, ExitCodesAndSignalsPassThrough) {
  TempDir dir;
  Profile exited = ProfileProgram(dir, {"exit_paths_static", "exit", "7"}, {"--backend", "ptrace"});
  EXPECT_EQ(exited.run.exit_code, 7);
  TempDir dir2;
  Profile aborted = ProfileProgram(dir2, {"exit_paths_static", "abort"}, {"--backend", "ptrace"});
  EXPECT_EQ(aborted.run.exit_code, 128 + 6);
  const json& r = OnlyReport(aborted);
  EXPECT_EQ(r["process"]["exit"]["reason"], "signal");
  EXPECT_EQ(r["process"]["exit"]["status"], 6);
}

TEST(Ptrace, TheBackendCanBeChosen) {
  TempDir dir;
  CommandResult r = RunCapture({PagewastePath(), "run", "--backend", "ptrace", "-o",
                                dir.path() + "/t.trace", "--", ProgramPath("mmap_two_bytes")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  CommandResult report = RunCapture({PagewastePath(), "report", "--format", "json", dir.path() + "/t.trace"});
  json j = ParseReport(report.out);
  EXPECT_EQ(j["process"]["backend"], "ptrace");
  EXPECT_EQ(SumAtSite(j, "mmap_two_bytes.c", SiteLine("mmap_two_bytes.c", "mmap"), "mappings"), 1000u);
}

TEST(Ptrace, KillingTheTracerDoesNotLeaveTheProgramStopped) {
  TempDir dir;
  std::string trace = dir.path() + "/sleeper.trace";
  auto [tracer, program] = StartTraced(trace, "sleeper_static", "ptrace");
  ASSERT_NE(program, 0) << "the program never started";
  kill(tracer, SIGKILL);
  int status;
  waitpid(tracer, &status, 0);
  // PTRACE_O_EXITKILL: the program goes with its tracer instead of staying
  // stopped (or sleeping on) with nobody to continue it.
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    usleep(20000);
    gone = access(("/proc/" + std::to_string(program)).c_str(), F_OK) != 0;
  }
  EXPECT_TRUE(gone) << "pid " << program << " is still there";
}

// strace -f -c's call counts for the given system calls, by name.
std::map<std::string, uint64_t> StraceSummary(const std::vector<std::string>& command) {
  std::vector<std::string> argv = {"strace", "-f", "-c", "-e", "trace=mmap,munmap"};
  argv.insert(argv.end(), command.begin(), command.end());
  CommandResult r = RunCapture(argv);
  std::map<std::string, uint64_t> counts;
  std::istringstream in(r.err);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::vector<std::string> f;
    for (std::string w; fields >> w;) f.push_back(w);
    // "% time  seconds  usecs/call  calls  [errors]  syscall"
    if (f.size() >= 5 && (f.back() == "mmap" || f.back() == "munmap")) counts[f.back()] = std::stoull(f[3]);
  }
  return counts;
}

TEST(Ptrace, AStaticGoProgramsMappingsEqualWhatStraceCounts) {
  std::string program = ProgramPath("go_maps");
  if (program == "go_maps") GTEST_SKIP() << "no go at build time (apt-get install golang-go)";
  if (RunCapture({"sh", "-c", "command -v strace"}).exit_code != 0) GTEST_SKIP() << "no strace";
  // One P and no collector: the runtime maps the same memory every run.
  setenv("GOMAXPROCS", "1", 1);
  setenv("GOGC", "off", 1);
  auto seen = StraceSummary({program});
  TempDir dir;
  Profile p = ProfileProgram(dir, {"go_maps"}, {"--backend", "ptrace"});
  unsetenv("GOMAXPROCS");
  unsetenv("GOGC");
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  EXPECT_EQ(p.run.out, "500\n");
  const json& r = OnlyReport(p);
  EXPECT_EQ(r["process"]["backend"], "ptrace");
  ASSERT_GT(seen["mmap"], 500u);
  EXPECT_EQ(r["summary"]["syscalls"]["mmap"].get<uint64_t>(), seen["mmap"]);
  EXPECT_EQ(r["summary"]["syscalls"]["munmap"].get<uint64_t>(), seen["munmap"]);
  // And the program's own 500 are at its lines in main.go.
  EXPECT_EQ(SumAtSite(r, "main.go", SiteLine("go_maps/main.go", "mmap"), "mappings"), 500u);
  EXPECT_EQ(SumAtSite(r, "main.go", SiteLine("go_maps/main.go", "mmap"), "page_waste_bytes"),
            500u * 4094);
}

class MappingsLiveAtExit : public ::testing::TestWithParam<const char*> {};

TEST_P(MappingsLiveAtExit, AreMeasuredBeforeTheProcessGoes) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {GetParam()}, PtraceIfStatic(GetParam()));
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  const json& r = OnlyReport(p);
  int line = SiteLine("leak_maps.c", "mmap");
  EXPECT_EQ(SumAtSite(r, "leak_maps.c", line, "leaked_allocations"), 10u);
  EXPECT_EQ(SumAtSite(r, "leak_maps.c", line, "unmappings"), 0u);
  EXPECT_EQ(SumAtSite(r, "leak_maps.c", line, "usage_measured_mappings"), 10u);
  EXPECT_EQ(SumAtSite(r, "leak_maps.c", line, "resident_pages"), 10u);
  // Bytes 0 and 2 written: 3 bytes used of each page.
  EXPECT_EQ(SumAtSite(r, "leak_maps.c", line, "used_bytes"), 30u);
  EXPECT_EQ(SumAtSite(r, "leak_maps.c", line, "estimated_waste_bytes"), 10u * 4093);
  EXPECT_EQ(r["summary"]["syscalls"]["munmap"], 0);
}

class SparseMapping : public ::testing::TestWithParam<const char*> {};

TEST_P(SparseMapping, UsesWhatItsResidentPagesHoldNotItsExtent) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {GetParam()}, PtraceIfStatic(GetParam()));
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  const json& r = OnlyReport(p);
  int line = SiteLine("sparse_map.c", "mmap");
  EXPECT_EQ(SumAtSite(r, "sparse_map.c", line, "resident_pages"), 1u);
  // One byte written, 512 KiB in: one byte used, not 512 KiB.
  EXPECT_EQ(SumAtSite(r, "sparse_map.c", line, "used_bytes"), 1u);
  // Waste in memory: the one resident page but its byte; the 255 pages never
  // touched cost nothing.
  EXPECT_EQ(SumAtSite(r, "sparse_map.c", line, "estimated_waste_bytes"), 4095u);
}

INSTANTIATE_TEST_SUITE_P(BothBackends, SparseMapping,
                         ::testing::Values("sparse_map", "sparse_map_static"));

INSTANTIATE_TEST_SUITE_P(BothBackends, MappingsLiveAtExit,
                         ::testing::Values("leak_maps", "leak_maps_static"));

// A 1 GiB PROT_NONE reservation with 1 MiB made accessible and written:
// 1 MiB of memory, 1 GiB of address space, reported apart.
class Reservation : public ::testing::TestWithParam<const char*> {};

TEST_P(Reservation, IsAddressSpaceNotMemoryUntilMadeAccessible) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {GetParam()}, PtraceIfStatic(GetParam()));
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  const json& r = OnlyReport(p);
  const json& s = r["summary"];
  constexpr uint64_t kGiB = 1ull << 30, kMiB = 1ull << 20;
  EXPECT_EQ(s["peak_live_bytes"], kMiB);
  EXPECT_EQ(s["peak_page_bytes"], kMiB);
  EXPECT_EQ(s["peak_reserved_bytes"], kGiB);
  EXPECT_EQ(s["reserved_at_exit_bytes"], kGiB - kMiB);
  EXPECT_EQ(s["leaked_bytes"], kMiB);
  int reserve = SiteLine("reserve.c", "reserve"), commit = SiteLine("reserve.c", "commit");
  EXPECT_EQ(SumAtSite(r, "reserve.c", reserve, "reservations"), 1u);
  EXPECT_EQ(SumAtSite(r, "reserve.c", reserve, "reserved_bytes"), kGiB);
  EXPECT_EQ(SumAtSite(r, "reserve.c", reserve, "mappings"), 0u);
  EXPECT_EQ(SumAtSite(r, "reserve.c", reserve, "page_bytes"), 0u);
  EXPECT_EQ(SumAtSite(r, "reserve.c", commit, "made_accessible_bytes"), kMiB);
  EXPECT_EQ(SumAtSite(r, "reserve.c", commit, "page_bytes"), kMiB);
  EXPECT_EQ(SyscallsAtSite(r, "reserve.c", commit, "mprotect"), 1u);
  EXPECT_EQ(SyscallsAtSite(r, "reserve.c", SiteLine("reserve.c", "advise"), "madvise"), 1u);
  // Measured at exit: the 256 pages written, less the 16 given back.
  EXPECT_EQ(SumAtSite(r, "reserve.c", reserve, "resident_pages"), 240u);
}

INSTANTIATE_TEST_SUITE_P(BothBackends, Reservation, ::testing::Values("reserve", "reserve_static"));

class ZigPageAllocator : public ::testing::TestWithParam<const char*> {};

TEST_P(ZigPageAllocator, ThousandTwoByteAllocationsAreThousandPages) {
  std::string program = ProgramPath(GetParam());
  if (program == GetParam()) GTEST_SKIP() << "no zig at build time (make test fetches it)";
  TempDir dir;
  Profile p = ProfileProgram(dir, {GetParam()}, PtraceIfStatic(GetParam()));
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  const json& r = OnlyReport(p);
  EXPECT_EQ(r["process"]["backend"],
            std::string(GetParam()) == "page_alloc_zig" ? "ptrace" : "preload");
  int alloc_line = SiteLine("page_alloc.zig", "alloc");
  int free_line = SiteLine("page_alloc.zig", "free");
  // page_allocator rounds each request up to a page before it calls mmap.
  EXPECT_EQ(SumAtSite(r, "page_alloc.zig", alloc_line, "mappings"), 1000u);
  EXPECT_EQ(SumAtSite(r, "page_alloc.zig", alloc_line, "page_bytes"), 1000u * 4096);
  EXPECT_EQ(SyscallsAtSite(r, "page_alloc.zig", alloc_line, "mmap"), 1000u);
  EXPECT_EQ(SumAtSite(r, "page_alloc.zig", free_line, "unmappings"), 1000u);
  EXPECT_EQ(SyscallsAtSite(r, "page_alloc.zig", free_line, "munmap"), 1000u);
  // So the waste shows in what was used: measured at each munmap.
  EXPECT_EQ(SumAtSite(r, "page_alloc.zig", alloc_line, "usage_measured_mappings"), 1000u);
  // Zig's Debug build fills a new block with 0xaa: both bytes are used.
  EXPECT_EQ(SumAtSite(r, "page_alloc.zig", alloc_line, "used_bytes"), 2000u);
  EXPECT_EQ(SumAtSite(r, "page_alloc.zig", alloc_line, "estimated_waste_bytes"), 4094000u);
  const json* site = FindSite(r, "page_alloc.zig", alloc_line);
  ASSERT_NE(site, nullptr);
  EXPECT_TRUE((*site)["used_bytes_estimated"].get<bool>());
  // What the summary says was not observed, and how the kernel's time is
  // given, depend on the backend that recorded it.
  CommandResult text = RunCapture({PagewastePath(), "report", p.traces[0]});
  bool ptrace = std::string(GetParam()) == "page_alloc_zig";
  EXPECT_EQ(text.out.find("not observed: run with --observe-syscalls") == std::string::npos, ptrace)
      << text.out;
  EXPECT_EQ(text.out.find("outside allocations  none: the ptrace backend records every memory "
                          "system call") != std::string::npos,
            ptrace)
      << text.out;
  // Under ptrace the run is slowed by the tracer's stops: no share of it.
  EXPECT_EQ(text.out.find("% of the traced run") == std::string::npos, ptrace) << text.out;
}

INSTANTIATE_TEST_SUITE_P(StaticAndLibc, ZigPageAllocator,
                         ::testing::Values("page_alloc_zig", "page_alloc_zig_libc"));

}  // namespace
}  // namespace pagewaste::e2e
