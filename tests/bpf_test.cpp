// The bpf backend on the ptrace backend's static programs: the same counts
// and call sites, the program's output and exit status unchanged; threads
// in forked processes; a ring buffer too small. Needs root and a kernel with
// BTF: skipped elsewhere with the reason, required in CI (REQUIRE_BPF).
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

#include <filesystem>
#include <map>
#include <set>

#include "e2e_support.h"

namespace pagewaste::e2e {
namespace {

using nlohmann::json;

// What a site did, by its label, at the test program's own lines: every
// syscall kind, and the mappings made and unmapped.
std::map<std::string, std::string> OwnSites(const json& report) {
  std::map<std::string, std::string> sites;
  for (const json& site : report["call_sites"]) {
    std::string label = site["label"];
    if (label.find("/tests/programs/") == std::string::npos) continue;
    sites[label] = site["syscalls"].dump() + " mappings " + site["mappings"].dump() +
                   " unmappings " + site["unmappings"].dump() + " page_bytes " +
                   site["page_bytes"].dump();
  }
  return sites;
}

// The pid of the process `run` started: the one whose parent traced nothing.
uint64_t FirstPid(const Profile& profile) {
  std::set<uint64_t> pids;
  for (const json& r : profile.reports) pids.insert(r["process"]["pid"].get<uint64_t>());
  for (const json& r : profile.reports) {
    if (!pids.count(r["process"]["ppid"].get<uint64_t>())) return r["process"]["pid"];
  }
  return 0;
}

uint64_t PidMax() {
  uint64_t pid_max = 0;
  if (FILE* f = std::fopen("/proc/sys/kernel/pid_max", "r")) {
    if (std::fscanf(f, "%lu", &pid_max) != 1) pid_max = 0;
    std::fclose(f);
  }
  return pid_max ? pid_max : 4194304;
}

struct StaticProgram {
  const char* name;
  const char* argument;  // a test program to pass, or null
  bool runtime_varies;   // Go: its runtime's own calls vary from run to run
};

class BpfBackend : public ::testing::TestWithParam<StaticProgram> {};

TEST_P(BpfBackend, CountsWhatThePtraceBackendCounts) {
  SKIP_WITHOUT_BPF();
  const StaticProgram& program = GetParam();
  std::string path = ProgramPath(program.name);
  if (path == program.name) GTEST_SKIP() << program.name << " was not built (no zig or go)";
  std::vector<std::string> command = {program.name};
  if (program.argument) command.push_back(ProgramPath(program.argument));
  TempDir ptrace_dir, bpf_dir;
  Profile p = ProfileProgram(ptrace_dir, command, {"--backend", "ptrace"});
  Profile b = ProfileProgram(bpf_dir, command, {"--backend", "bpf"});
  EXPECT_EQ(b.run.exit_code, p.run.exit_code) << b.run.err;
  EXPECT_EQ(b.run.out, p.run.out);
  ASSERT_EQ(b.reports.size(), p.reports.size()) << b.run.err;
  ASSERT_FALSE(b.reports.empty());
  // Traces are named by pid, which differ: match them by order of start
  // (a pid's image that exec'd before the one it exec'd). Pids are handed
  // out in increasing order but wrap at pid_max, so the order is counted
  // from the first process's pid, modulo pid_max.
  auto by_start = [](const Profile& profile) {
    uint64_t first = FirstPid(profile), pid_max = PidMax();
    std::map<std::pair<uint64_t, bool>, const json*> ordered;
    for (const json& r : profile.reports) {
      uint64_t pid = r["process"]["pid"].get<uint64_t>();
      bool after_exec = r["process"]["exit"]["reason"] != "exec";
      ordered[{(pid + pid_max - first) % pid_max, after_exec}] = &r;
    }
    return ordered;
  };
  auto ptrace_reports = by_start(p), bpf_reports = by_start(b);
  ASSERT_EQ(ptrace_reports.size(), p.reports.size());
  ASSERT_EQ(bpf_reports.size(), p.reports.size());
  for (auto pt = ptrace_reports.begin(), bp = bpf_reports.begin(); pt != ptrace_reports.end();
       ++pt, ++bp) {
    const json& pr = *pt->second;
    const json& br = *bp->second;
    SCOPED_TRACE(br["process"]["exe"].get<std::string>());
    EXPECT_EQ(br["process"]["backend"], "bpf");
    EXPECT_EQ(br["trace"]["status"], "complete");
    EXPECT_EQ(br["process"]["exit"], pr["process"]["exit"]);
    EXPECT_EQ(br["process"]["exe"], pr["process"]["exe"]);
    if (!program.runtime_varies) {
      EXPECT_EQ(br["summary"]["syscalls"], pr["summary"]["syscalls"]);
      EXPECT_EQ(br["summary"]["mappings"], pr["summary"]["mappings"]);
      EXPECT_EQ(br["summary"]["page_waste_bytes"], pr["summary"]["page_waste_bytes"]);
    }
    if (!program.runtime_varies) {
      EXPECT_EQ(OwnSites(br), OwnSites(pr));
      continue;
    }
    // Go's runtime grows its heap as its collector's timing decides: under
    // either backend syscall.Mmap's own bookkeeping (a map insert) at the
    // mmap line may take one heap mapping more, of 256 KiB. The program's
    // 500 calls at each line are there.
    int map_line = SiteLine("go_maps/main.go", "mmap");
    int unmap_line = SiteLine("go_maps/main.go", "munmap");
    for (const json* r : {&pr, &br}) {
      uint64_t maps = SyscallsAtSite(*r, "main.go", map_line, "mmap");
      EXPECT_TRUE(maps == 500 || maps == 501) << maps;
      EXPECT_EQ(SumAtSite(*r, "main.go", map_line, "page_bytes"),
                500u * 4096 + (maps - 500) * 262144);
      EXPECT_EQ(SyscallsAtSite(*r, "main.go", unmap_line, "munmap"), 500u);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    StaticPrograms, BpfBackend,
    ::testing::Values(StaticProgram{"mmap_two_bytes_static", nullptr, false},
                      StaticProgram{"exit_paths_static", nullptr, false},
                      StaticProgram{"leak_maps_static", nullptr, false},
                      StaticProgram{"sparse_map_static", nullptr, false},
                      StaticProgram{"reserve_static", nullptr, false},
                      StaticProgram{"fork_exec_static", "exec_target_static", false},
                      StaticProgram{"process_tree_static", nullptr, false},
                      StaticProgram{"print_euid_static", nullptr, false},
                      StaticProgram{"thread_maps_static", nullptr, false},
                      StaticProgram{"page_alloc_zig", nullptr, false},
                      StaticProgram{"go_maps", nullptr, true}),
    [](const ::testing::TestParamInfo<StaticProgram>& info) { return std::string(info.param.name); });

TEST(Bpf, ZigPageAllocatorsThousandPagesAreAtTheZigLine) {
  SKIP_WITHOUT_BPF();
  if (ProgramPath("page_alloc_zig") == "page_alloc_zig") GTEST_SKIP() << "no zig at build time";
  TempDir dir;
  Profile p = ProfileProgram(dir, {"page_alloc_zig"}, {"--backend", "bpf"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  const json& r = OnlyReport(p);
  EXPECT_EQ(r["process"]["backend"], "bpf");
  int alloc_line = SiteLine("page_alloc.zig", "alloc");
  int free_line = SiteLine("page_alloc.zig", "free");
  EXPECT_EQ(SumAtSite(r, "page_alloc.zig", alloc_line, "mappings"), 1000u);
  EXPECT_EQ(SumAtSite(r, "page_alloc.zig", alloc_line, "page_bytes"), 1000u * 4096);
  EXPECT_EQ(SyscallsAtSite(r, "page_alloc.zig", alloc_line, "mmap"), 1000u);
  EXPECT_EQ(SyscallsAtSite(r, "page_alloc.zig", free_line, "munmap"), 1000u);
  // What each page held, measured by the BPF program at the munmap's entry:
  // Zig's Debug build fills a new block with 0xaa, so both bytes are used.
  EXPECT_EQ(SumAtSite(r, "page_alloc.zig", alloc_line, "usage_measured_mappings"), 1000u);
  EXPECT_EQ(SumAtSite(r, "page_alloc.zig", alloc_line, "resident_pages"), 1000u);
  EXPECT_EQ(SumAtSite(r, "page_alloc.zig", alloc_line, "used_bytes"), 2000u);
  EXPECT_EQ(SumAtSite(r, "page_alloc.zig", alloc_line, "estimated_waste_bytes"), 4094000u);
}

TEST(Bpf, AStaticProgramThatForksWithThreadsRunningGetsTwoCompleteTraces) {
  SKIP_WITHOUT_BPF();
  TempDir dir;
  Profile p = ProfileProgram(dir, {"thread_maps_static"}, {"--backend", "bpf"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  EXPECT_EQ(p.run.out, "threads ok\n");
  ASSERT_EQ(p.reports.size(), 2u) << p.run.err;
  int map_line = SiteLine("thread_maps.c", "thread_map");
  int unmap_line = SiteLine("thread_maps.c", "thread_unmap");
  std::set<uint64_t> pids;
  for (const json& r : p.reports) pids.insert(r["process"]["pid"].get<uint64_t>());
  for (const json& r : p.reports) {
    EXPECT_EQ(r["trace"]["status"], "complete");
    EXPECT_EQ(r["process"]["exit"]["reason"], "exit");
    bool child = pids.count(r["process"]["ppid"].get<uint64_t>()) != 0;
    // Parent: 3 threads of 200 mappings, and its main thread (the C
    // library's start); child: 2 threads of 300.
    std::multiset<uint64_t> mappings_by_thread;
    for (const json& t : r["threads"])
      if (t["mappings"].get<uint64_t>()) mappings_by_thread.insert(t["mappings"].get<uint64_t>());
    std::multiset<uint64_t> expected =
        child ? std::multiset<uint64_t>{300, 300} : std::multiset<uint64_t>{200, 200, 200};
    EXPECT_EQ(mappings_by_thread, expected);
    EXPECT_EQ(r["process"]["threads"], child ? 2 : 4);
    EXPECT_EQ(SyscallsAtSite(r, "thread_maps.c", map_line, "mmap"), 600u);
    EXPECT_EQ(SumAtSite(r, "thread_maps.c", map_line, "mappings"), 600u);
    EXPECT_EQ(SyscallsAtSite(r, "thread_maps.c", unmap_line, "munmap"), 600u);
    EXPECT_EQ(SumAtSite(r, "thread_maps.c", map_line, "page_waste_bytes"), 600u * 4094);
  }
}

// 100 calls deep: the chain goes on past what the BPF program walks, so
// each of the two stacks is cut, counted, and said; the site is whole.
TEST(Bpf, AStackTooDeepIsCutCountedAndSaid) {
  SKIP_WITHOUT_BPF();
  TempDir dir;
  Profile p = ProfileProgram(dir, {"deep_stack_static"}, {"--backend", "bpf"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  const json& r = OnlyReport(p);
  EXPECT_EQ(r["trace"]["status"], "complete");
  EXPECT_EQ(r["trace"]["stacks_cut"], 2);
  EXPECT_EQ(SumAtSite(r, "deep_stack.c", SiteLine("deep_stack.c", "deep_map"), "mappings"), 1u);
  CommandResult text = RunCapture({PagewastePath(), "report", p.traces[0]});
  EXPECT_NE(text.out.find("2 stacks cut at the depth the backend follows"), std::string::npos)
      << text.out;
}

TEST(Bpf, ARingBufferTooSmallCountsWhatItLostAndTheReportSaysSo) {
  SKIP_WITHOUT_BPF();
  TempDir dir;
  Profile p = ProfileProgram(dir, {"mmap_two_bytes_static"}, {"--backend", "bpf",
                                                              "--ring-buffer", "4K"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  const json& r = OnlyReport(p);
  EXPECT_EQ(r["trace"]["status"], "incomplete");
  uint64_t lost = r["trace"]["events_lost"];
  EXPECT_GT(lost, 0u);
  // Every system call the program made is either in the trace or counted
  // lost: 1,000 mmap and 1,000 munmap of its own, 6 of the C library's start.
  EXPECT_EQ(r["summary"]["syscalls"]["total"].get<uint64_t>() + lost, 2006u);
  CommandResult text = RunCapture({PagewastePath(), "report", p.traces[0]});
  EXPECT_EQ(text.exit_code, 4);
  EXPECT_NE(text.out.find("ring buffer had no room for " + GroupDigits(lost) + " events"),
            std::string::npos)
      << text.out << text.err;
}

}  // namespace
}  // namespace pagewaste::e2e
