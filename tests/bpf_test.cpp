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

#ifdef PAGEWASTE_REQUIRE_BPF
#define SKIP_WITHOUT_BPF()                                                       \
  do {                                                                           \
    std::string why = BpfUnavailable();                                          \
    if (!why.empty()) FAIL() << "required (REQUIRE_BPF) but cannot run: " << why; \
  } while (0)
#else
#define SKIP_WITHOUT_BPF()                                   \
  do {                                                       \
    std::string why = BpfUnavailable();                      \
    if (!why.empty()) GTEST_SKIP() << why;                   \
  } while (0)
#endif

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
  // Traces are named by pid, which differ: match them by order of start.
  auto by_pid = [](const Profile& profile) {
    std::map<uint64_t, const json*> ordered;
    for (const json& r : profile.reports) ordered[r["process"]["pid"].get<uint64_t>()] = &r;
    return ordered;
  };
  auto ptrace_reports = by_pid(p), bpf_reports = by_pid(b);
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
  EXPECT_NE(text.out.find("ring buffer had no room for " + Grouped(lost) + " events"),
            std::string::npos)
      << text.out << text.err;
}

// A child process with its stdin and stdout (or stderr) on pipes.
struct Child {
  pid_t pid = 0;
  int in = -1;   // its stdin
  FILE* out = nullptr;  // what it writes

  static Child Start(const std::vector<std::string>& argv, bool read_stderr) {
    int to[2], from[2];
    EXPECT_EQ(pipe2(to, O_CLOEXEC), 0);
    EXPECT_EQ(pipe2(from, O_CLOEXEC), 0);
    Child c;
    c.pid = fork();
    if (c.pid == 0) {
      dup2(to[0], 0);
      dup2(from[1], read_stderr ? 2 : 1);
      std::vector<char*> args;
      for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    close(to[0]);
    close(from[1]);
    c.in = to[1];
    c.out = fdopen(from[0], "r");
    return c;
  }
  std::string ReadLine() {
    char line[512];
    return fgets(line, sizeof line, out) ? line : "";
  }
  void Write(const std::string& text) const {
    EXPECT_EQ(write(in, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  }
  int Wait() {
    if (in >= 0) close(in);
    in = -1;
    int status = 0;
    waitpid(pid, &status, 0);
    if (out) fclose(out);
    out = nullptr;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
};

// One attach to the program: waits for the line that says it records, lets
// the program make one round, and ends the attach with SIGINT (or, with
// last, by ending the program's input: it exits, and attach with it).
json AttachForOneRound(Child* program, const std::string& dir, int round, bool last,
                       const std::vector<std::string>& options = {}) {
  std::vector<std::string> argv = {PagewastePath(), "attach", "-o", dir + "/%e.%p.trace"};
  argv.insert(argv.end(), options.begin(), options.end());
  argv.push_back(std::to_string(program->pid));
  Child attach = Child::Start(argv, /*read_stderr=*/true);
  std::string said = attach.ReadLine();
  EXPECT_EQ(said.rfind("pagewaste: attached to " + std::to_string(program->pid) +
                           " (attach_target): recording until",
                       0),
            0u)
      << said;
  program->Write("go\n");
  EXPECT_EQ(program->ReadLine(), "round " + std::to_string(round) + "\n");
  if (last) {
    close(program->in);
    program->in = -1;
  } else {
    kill(attach.pid, SIGINT);
  }
  std::string rest;
  for (std::string line; !(line = attach.ReadLine()).empty();) rest += line;
  EXPECT_EQ(attach.Wait(), 0) << rest;
  std::vector<std::string> traces;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    traces.push_back(entry.path().string());
  EXPECT_EQ(traces.size(), 1u) << rest;
  if (traces.empty()) return json::object();
  CommandResult r = RunCapture({PagewastePath(), "report", "--format", "json", traces[0]});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::filesystem::remove(traces[0]);
  return ParseReport(r.out);
}

// attach to a program that waits, then makes 1000 page mappings and 1000
// mallocs: exactly those, at their lines; twice, and a third time sampling;
// the program runs on and ends with its own output and status.
TEST(Attach, RecordsExactlyWhatTheProgramDoesFromThenOnEachTime) {
  SKIP_WITHOUT_BPF();
  Child program = Child::Start({ProgramPath("attach_target")}, /*read_stderr=*/false);
  ASSERT_EQ(program.ReadLine(), "ready\n");
  TempDir dir;
  for (int round = 1; round <= 2; ++round) {
    SCOPED_TRACE(round);
    json r = AttachForOneRound(&program, dir.path(), round, /*last=*/false);
    EXPECT_EQ(r["process"]["backend"], "bpf");
    EXPECT_EQ(r["process"]["attached"], true);
    EXPECT_EQ(r["trace"]["status"], "complete");
    EXPECT_EQ(r["process"]["exit"]["reason"], "detach");
    int page = SiteLine("attach_target.c", "page");
    int block = SiteLine("attach_target.c", "block");
    EXPECT_EQ(SumAtSite(r, "attach_target.c", page, "mappings"), 1000u);
    EXPECT_EQ(SyscallsAtSite(r, "attach_target.c", page, "mmap"), 1000u);
    EXPECT_EQ(SumAtSite(r, "attach_target.c", page, "page_waste_bytes"), 1000u * 4094);
    EXPECT_EQ(SyscallsAtSite(r, "attach_target.c", SiteLine("attach_target.c", "unpage"),
                             "munmap"),
              1000u);
    EXPECT_EQ(SumAtSite(r, "attach_target.c", block, "allocations"), 1000u);
    EXPECT_EQ(SumAtSite(r, "attach_target.c", block, "requested_bytes"), 100000u);
    EXPECT_EQ(SumAtSite(r, "attach_target.c", block, "frees"), 1000u);
    EXPECT_EQ(r["summary"]["allocations"], 1000);
    EXPECT_EQ(r["summary"]["mappings"], 1000);
    EXPECT_EQ(r["summary"]["syscalls"]["total"], 2000 + (round == 1 ? 1 : 0));
    // The block and the page from before the first attach, given back in
    // its round: counted apart, never a free or a leak of a site.
    json before = r["process"]["before_attach"];
    EXPECT_EQ(before["frees"], round == 1 ? 1 : 0);
    EXPECT_EQ(before["unmappings"], round == 1 ? 1 : 0);
    EXPECT_EQ(before["unmapped_bytes"], round == 1 ? 4096 : 0);
    EXPECT_EQ(r["summary"]["frees"], 1000);
    EXPECT_EQ(r["summary"]["unmappings"], 1000);
    EXPECT_EQ(r["summary"]["leaked_allocations"], 0);
    EXPECT_EQ(r["summary"]["leaked_bytes"], 0);
  }
  // A third, sampling the malloc family (a pick per 100 B on average: each
  // 100 B block with probability 1 - 1/e), to the program's exit: its
  // system calls are all there, and a block's free is recorded exactly
  // when its allocation is.
  json r = AttachForOneRound(&program, dir.path(), 3, /*last=*/true, {"--sample", "100"});
  EXPECT_EQ(r["process"]["exit"]["reason"], "exit");
  EXPECT_EQ(r["process"]["exit"]["status"], 3);
  EXPECT_EQ(r["trace"]["sample_interval_bytes"], 100);
  EXPECT_EQ(r["summary"]["mappings"], 1000);
  EXPECT_EQ(r["summary"]["syscalls"]["total"], 2000);
  int block = SiteLine("attach_target.c", "block");
  uint64_t allocations = SumAtSite(r, "attach_target.c", block, "allocations");
  EXPECT_GT(allocations, 0u);
  EXPECT_EQ(SumAtSite(r, "attach_target.c", block, "frees"), allocations);
  EXPECT_EQ(r["summary"]["leaked_allocations"], 0);
  std::string rest;
  for (std::string line; !(line = program.ReadLine()).empty();) rest += line;
  EXPECT_EQ(rest, "");
  EXPECT_EQ(program.Wait(), 3);
}

TEST(Attach, ToNoProcessOrWithoutPermissionFailsAtOnce) {
  CommandResult none = RunCapture({PagewastePath(), "attach", "4194305"});
  EXPECT_EQ(none.exit_code, 127);
  EXPECT_EQ(none.err, "pagewaste: no process 4194305\n");
  if (geteuid() != 0) GTEST_SKIP() << "needs root, to try it as nobody";
  CommandResult nobody =
      RunCapture({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", PagewastePath(),
                  "attach", "-o", "/tmp/pagewaste-nobody.%p.trace", "1"});
  EXPECT_EQ(nobody.exit_code, 126);
  EXPECT_EQ(nobody.err, "pagewaste: cannot attach to 1: loading BPF programs needs root, or "
                        "CAP_BPF and CAP_PERFMON\n");
}

}  // namespace
}  // namespace pagewaste::e2e
