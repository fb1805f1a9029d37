// pagewaste attach: a running program recorded from then on, each way the
// malloc family can be seen (the feed library injected into it, or uprobes
// on its C library), again and again, sampled, with threads that free what
// others allocated, and with a child it forks. Needs root and a kernel
// with BTF: skipped elsewhere with the reason, required in CI (REQUIRE_BPF).
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "e2e_support.h"

namespace pagewaste::e2e {
namespace {

using nlohmann::json;

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

// Starts `pagewaste attach` on the program (named name), seeing the malloc
// family the given way, and reads its first line: it records from then on.
Child StartAttach(const Child& program, const std::string& name, const std::string& dir,
                  const std::string& malloc_calls, const std::vector<std::string>& options = {}) {
  std::vector<std::string> argv = {PagewastePath(), "attach", "-o", dir + "/%e.%p.trace",
                                   "--malloc-calls", malloc_calls};
  argv.insert(argv.end(), options.begin(), options.end());
  argv.push_back(std::to_string(program.pid));
  Child attach = Child::Start(argv, /*read_stderr=*/true);
  std::string said = attach.ReadLine();
  EXPECT_EQ(said.rfind("pagewaste: attached to " + std::to_string(program.pid) + " (" + name +
                           "): recording until",
                       0),
            0u)
      << said;
  return attach;
}

// Waits for the attach to end (status 0) and reports each trace in dir,
// which it then removes.
std::vector<json> FinishAttach(Child* attach, const std::string& dir) {
  std::string rest;
  for (std::string line; !(line = attach->ReadLine()).empty();) rest += line;
  EXPECT_EQ(attach->Wait(), 0) << rest;
  std::vector<json> reports;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    CommandResult r = RunCapture({PagewastePath(), "report", "--format", "json", entry.path()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    reports.push_back(ParseReport(r.out));
    std::filesystem::remove(entry.path());
  }
  return reports;
}

// One attach to the program: waits for the line that says it records, lets
// the program make one round, and ends the attach with SIGINT (or, with
// last, by ending the program's input: it exits, and attach with it).
json AttachForOneRound(Child* program, const std::string& dir, const std::string& malloc_calls,
                       int round, bool last, const std::vector<std::string>& options = {}) {
  Child attach = StartAttach(*program, "attach_target", dir, malloc_calls, options);
  program->Write("go\n");
  EXPECT_EQ(program->ReadLine(), "round " + std::to_string(round) + "\n");
  if (last) {
    close(program->in);
    program->in = -1;
  } else {
    kill(attach.pid, SIGINT);
  }
  std::vector<json> reports = FinishAttach(&attach, dir);
  EXPECT_EQ(reports.size(), 1u);
  return reports.empty() ? json::object() : reports[0];
}

// attach to a program that waits, then makes 1000 page mappings and 1000
// mallocs: exactly those, at their lines; twice, and a third time sampling;
// the program runs on and ends with its own output and status.
class Attach : public ::testing::TestWithParam<std::string> {};

TEST_P(Attach, RecordsExactlyWhatTheProgramDoesFromThenOnEachTime) {
  SKIP_WITHOUT_BPF();
  Child program = Child::Start({ProgramPath("attach_target")}, /*read_stderr=*/false);
  ASSERT_EQ(program.ReadLine(), "ready\n");
  TempDir dir;
  for (int round = 1; round <= 2; ++round) {
    SCOPED_TRACE(round);
    json r = AttachForOneRound(&program, dir.path(), GetParam(), round, /*last=*/false);
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
  json r = AttachForOneRound(&program, dir.path(), GetParam(), 3, /*last=*/true,
                             {"--sample", "100"});
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

// The feed library in a program with threads and a child: a block freed
// on another thread than the one that allocated it is freed in the trace;
// a block of 40 MiB (past glibc's largest mmap threshold) costs its site
// exactly one mmap and one munmap, inside the allocator, not a mapping of
// the program's; the child forked after the attach gets a trace of its
// own, with its 100 mallocs, through the hooks it inherited.
TEST(AttachFeed, SeesThreadsAndChildrenWithTheAllocatorsSystemCalls) {
  SKIP_WITHOUT_BPF();
  Child program = Child::Start({ProgramPath("attach_workers")}, /*read_stderr=*/false);
  ASSERT_EQ(program.ReadLine(), "ready\n");
  TempDir dir;
  Child attach = StartAttach(program, "attach_workers", dir.path(), "inject");
  program.Write("go\n");
  EXPECT_EQ(program.ReadLine(), "done\n");
  EXPECT_EQ(program.Wait(), 4);
  std::vector<json> reports = FinishAttach(&attach, dir.path());
  ASSERT_EQ(reports.size(), 2u);
  bool parent_first = reports[0]["process"]["pid"] == program.pid;
  const json& parent = reports[parent_first ? 0 : 1];
  const json& child = reports[parent_first ? 1 : 0];
  const char* file = "attach_workers.c";
  EXPECT_EQ(parent["trace"]["status"], "complete");
  EXPECT_EQ(parent["process"]["exit"]["status"], 4);
  EXPECT_EQ(parent["summary"]["allocations"], 5040);
  EXPECT_EQ(parent["summary"]["frees"], 5040);
  // (Live at its exit: the four threads' stacks, which glibc keeps.)
  EXPECT_EQ(parent["summary"]["mappings"], 0);
  int hand = SiteLine(file, "hand");
  EXPECT_EQ(SumAtSite(parent, file, hand, "allocations"), 1000u);
  EXPECT_EQ(SumAtSite(parent, file, hand, "frees"), 1000u);
  EXPECT_EQ(SumAtSite(parent, file, hand, "leaked_allocations"), 0u);
  int small = SiteLine(file, "small");
  EXPECT_EQ(SumAtSite(parent, file, small, "allocations"), 4000u);
  EXPECT_EQ(SumAtSite(parent, file, small, "requested_bytes"), 800000u);
  int big = SiteLine(file, "big");
  EXPECT_EQ(SumAtSite(parent, file, big, "allocations"), 40u);
  EXPECT_EQ(SumAtSite(parent, file, big, "frees"), 40u);
  EXPECT_EQ(SyscallsAtSite(parent, file, big, "mmap"), 40u);
  EXPECT_EQ(SyscallsAtSite(parent, file, big, "munmap"), 40u);
  EXPECT_EQ(child["trace"]["status"], "complete");
  EXPECT_EQ(child["process"]["exit"]["status"], 0);
  EXPECT_EQ(child["summary"]["allocations"], 100);
  EXPECT_EQ(SumAtSite(child, file, SiteLine(file, "child"), "allocations"), 100u);
  EXPECT_EQ(child["summary"]["frees"], 100);
}

// A program that makes no system call while attach looks for a point to
// load the feed library at: it is stopped in its own code, and the feed
// sees its 1000 mallocs.
TEST(AttachFeed, LoadsIntoAProgramThatOnlyComputes) {
  SKIP_WITHOUT_BPF();
  Child program = Child::Start({ProgramPath("spin_alloc")}, /*read_stderr=*/false);
  ASSERT_EQ(program.ReadLine(), "ready\n");
  TempDir dir;
  Child attach = StartAttach(program, "spin_alloc", dir.path(), "inject");
  kill(program.pid, SIGUSR1);
  EXPECT_EQ(program.ReadLine(), "done\n");
  EXPECT_EQ(program.Wait(), 0);
  std::vector<json> reports = FinishAttach(&attach, dir.path());
  ASSERT_EQ(reports.size(), 1u);
  const json& report = reports[0];
  EXPECT_EQ(report["trace"]["status"], "complete");
  EXPECT_EQ(report["summary"]["allocations"], 1000);
  EXPECT_EQ(report["summary"]["frees"], 1000);
  int site = SiteLine("spin_alloc.c", "spin_block");
  EXPECT_EQ(SumAtSite(report, "spin_alloc.c", site, "allocations"), 1000u);
}

INSTANTIATE_TEST_SUITE_P(MallocCalls, Attach, ::testing::Values("inject", "uprobes"),
                         [](const auto& info) { return info.param; });

TEST(AttachRefusal, ToNoProcessOrWithoutPermissionFailsAtOnce) {
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
