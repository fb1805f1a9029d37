// Programs that are hard on a profiler: 64 threads at once, a segfault, a
// seccomp filter of their own, another allocator (jemalloc), and a disk
// that fills up under the trace. Each prints and exits under `pagewaste
// run` exactly as it does alone, and its counts are exact. (abort and
// SIGKILL mid-run: ExitPaths and the killed program's tests.)
#include <gtest/gtest.h>

#include <unistd.h>

#include "e2e_support.h"

namespace pagewaste::e2e {
namespace {

using nlohmann::json;

// Runs the program alone, then profiles it, and checks that the two runs
// printed and exited alike.
Profile ProfileLikePlain(const TempDir& dir, const std::vector<std::string>& command) {
  std::vector<std::string> plain_argv = command;
  plain_argv[0] = ProgramPath(command[0]);
  CommandResult plain = RunCapture(plain_argv);
  Profile p = ProfileProgram(dir, command);
  EXPECT_EQ(p.run.exit_code, plain.exit_code) << p.run.err;
  EXPECT_EQ(p.run.out, plain.out);
  return p;
}

TEST(Hostile, SixtyFourThreadsCountExactly) {
  TempDir dir;
  Profile p = ProfileLikePlain(dir, {"many_threads"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  const json& r = OnlyReport(p);
  EXPECT_EQ(r["trace"]["status"], "complete");
  int block = SiteLine("many_threads.c", "block"), array = SiteLine("many_threads.c", "array");
  // 64 threads x (9,999 blocks + their array) = 640,000 allocations.
  EXPECT_EQ(SumAtSite(r, "many_threads.c", block, "allocations"), 64u * 9999);
  EXPECT_EQ(SumAtSite(r, "many_threads.c", array, "allocations"), 64u);
  // Every block freed, and each free matched to its own block: a free taken
  // for another thread's block (the same address, handed out again in
  // between) would leave a block live. A free that trimmed the heap is
  // charged to the free's own line, the others to the allocating one.
  int free_array = SiteLine("many_threads.c", "free_array");
  EXPECT_EQ(SumAtSite(r, "many_threads.c", block, "frees") +
                SumAtSite(r, "many_threads.c", array, "frees") +
                SumAtSite(r, "many_threads.c", free_array, "frees"),
            640000u);
  EXPECT_EQ(SumAtSite(r, "many_threads.c", block, "leaked_allocations"), 0u);
  EXPECT_EQ(SumAtSite(r, "many_threads.c", array, "leaked_allocations"), 0u);
  uint64_t requested = 0;
  for (int i = 0; i < 9999; ++i) requested += 8 + i % 100;
  EXPECT_EQ(SumAtSite(r, "many_threads.c", block, "requested_bytes"), 64u * requested);
}

TEST(Hostile, ASegfaultEndsTheTraceWithItsSignal) {
  TempDir dir;
  Profile p = ProfileLikePlain(dir, {"segfault"});
  EXPECT_EQ(p.run.exit_code, 128 + 11);
  EXPECT_EQ(p.run.out, "before the fault\n");
  const json& r = OnlyReport(p);
  EXPECT_EQ(r["trace"]["status"], "complete");
  EXPECT_EQ(r["process"]["exit"]["reason"], "signal");
  EXPECT_EQ(r["process"]["exit"]["status"], 11);
  EXPECT_EQ(SumAtSite(r, "segfault.c", SiteLine("segfault.c", "kept"), "allocations"), 7u);
  EXPECT_EQ(SumAtSite(r, "segfault.c", SiteLine("segfault.c", "kept"), "leaked_allocations"), 7u);
}

TEST(Hostile, AProgramWithItsOwnSeccompFilterRunsAsItWouldAlone) {
  TempDir dir;
  Profile p = ProfileLikePlain(dir, {"own_seccomp"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  EXPECT_EQ(p.run.out, "madvise: -1 EPERM\n");
  const json& r = OnlyReport(p);
  EXPECT_EQ(r["trace"]["status"], "complete");
  EXPECT_EQ(SumAtSite(r, "own_seccomp.c", SiteLine("own_seccomp.c", "malloc"), "allocations"), 1000u);
  int mmap = SiteLine("own_seccomp.c", "mmap");
  EXPECT_EQ(SumAtSite(r, "own_seccomp.c", mmap, "mappings"), 10u);
  EXPECT_EQ(SumAtSite(r, "own_seccomp.c", mmap, "page_waste_bytes"), 10u * 4094);
  // The filter's EPERM is the program's to see, and the trace's.
  EXPECT_EQ(SumAtSite(r, "own_seccomp.c", SiteLine("own_seccomp.c", "madvise"), "failed_calls"), 1u);
}

TEST(Hostile, AProgramLinkedWithJemallocCountsExactly) {
  std::string program = ProgramPath("malloc_count_jemalloc");
  if (program == "malloc_count_jemalloc") GTEST_SKIP() << "no jemalloc (apt-get install libjemalloc-dev)";
  TempDir dir;
  Profile p = ProfileLikePlain(dir, {"malloc_count_jemalloc"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  const json& r = OnlyReport(p);
  EXPECT_EQ(r["trace"]["status"], "complete");
  int line = SiteLine("malloc_count.c", "malloc");
  EXPECT_EQ(SumAtSite(r, "malloc_count.c", line, "allocations"), 1234u);
  EXPECT_EQ(SumAtSite(r, "malloc_count.c", line, "frees"), 1234u);
  EXPECT_EQ(SumAtSite(r, "malloc_count.c", line, "requested_bytes"), 1234u * 40);
  // jemalloc's size class for 40 bytes is 48.
  EXPECT_EQ(SumAtSite(r, "malloc_count.c", line, "usable_bytes"), 1234u * 48);
}

// A 128 KiB file system (a tmpfs in a mount namespace of its own, so root
// only) cannot hold the trace of 200,000 malloc/free pairs. The program
// must run on and exit as it would; the trace keeps what fitted, is
// incomplete, counts what it lost, and fails `check` unless allowed. With
// the disk full from the start, no trace is left and run fails.
TEST(Hostile, AFullDiskCostsTheTraceNotTheProgram) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root, to mount a small tmpfs";
  if (RunCapture({"unshare", "--mount", "true"}).exit_code != 0)
    GTEST_SKIP() << "no mount namespaces here (a container without CAP_SYS_ADMIN)";
  TempDir dir;
  std::string mnt = dir.path() + "/small";
  std::string script =
      "mkdir -p " + mnt + " && mount -t tmpfs -o size=128k tmpfs " + mnt + " && " +
      PagewastePath() + " run --no-compress -o " + mnt + "/t.trace -- " +
      ProgramPath("fill_trace") + " 200000; echo $? >" + dir.path() + "/code; cp " + mnt +
      "/t.trace " + dir.path() + "/t.trace; umount " + mnt + " && mount -t tmpfs -o size=4k tmpfs " +
      mnt + " && head -c 4096 /dev/zero >" + mnt + "/fill && " + PagewastePath() + " run -o " +
      mnt + "/full.trace -- " + ProgramPath("fill_trace") + " 20 2>" + dir.path() +
      "/full_err; echo $? >" + dir.path() + "/full_code; ls " + mnt + " >" + dir.path() +
      "/full_ls";
  CommandResult r = RunCapture({"unshare", "--mount", "sh", "-c", script});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "200000 pairs\n20 pairs\n");
  EXPECT_EQ(RunCapture({"cat", dir.path() + "/code"}).out, "0\n");
  std::string trace = dir.path() + "/t.trace";
  CommandResult text = RunCapture({PagewastePath(), "report", trace});
  EXPECT_EQ(text.exit_code, 4) << text.err;
  EXPECT_NE(text.out.find("WARNING   the trace is incomplete: the producer could not write"),
            std::string::npos)
      << text.out;
  CommandResult report = RunCapture({PagewastePath(), "report", "--format", "json", trace});
  EXPECT_EQ(report.exit_code, 4);
  json doc = ParseDocument(report.out);
  const json& t = doc["processes"][0]["trace"];
  EXPECT_EQ(t["status"], "incomplete");
  EXPECT_GT(t["chunks_lost"].get<uint64_t>(), 0u);
  uint64_t lost = t["events_lost"].get<uint64_t>();
  EXPECT_GT(lost, 0u);
  // At least the pairs' 400,000 events were counted; what is here and
  // what was lost add up to them.
  EXPECT_GE(t["events"].get<uint64_t>() + lost, 400000u);
  EXPECT_EQ(doc["combined"]["lost"]["incomplete_traces"], 1);
  EXPECT_EQ(doc["combined"]["lost"]["events"], lost);
  EXPECT_EQ(doc["combined"]["lost"]["bytes"], t["bytes_lost"]);
  EXPECT_EQ(doc["processes"][0]["process"]["exit"]["reason"], "exit");
  EXPECT_EQ(doc["processes"][0]["process"]["exit"]["status"], 0);
  // A limit the trace's figures meet does not make it pass.
  CommandResult check = RunCapture({PagewastePath(), "check", "--max-allocations", "1000000", trace});
  EXPECT_EQ(check.exit_code, 1) << check.out;
  EXPECT_NE(check.out.find("FAIL incomplete traces (" + GroupDigits(lost) + " events and "),
            std::string::npos)
      << check.out;
  CommandResult allowed = RunCapture(
      {PagewastePath(), "check", "--allow-incomplete", "--max-allocations", "1000000", trace});
  EXPECT_EQ(allowed.exit_code, 0) << allowed.out;

  EXPECT_EQ(RunCapture({"cat", dir.path() + "/full_code"}).out, "125\n");
  EXPECT_EQ(RunCapture({"cat", dir.path() + "/full_ls"}).out, "fill\n");  // no empty trace
  std::string err = RunCapture({"cat", dir.path() + "/full_err"}).out;
  EXPECT_NE(err.find("cannot write the trace file " + mnt + "/full.trace: No space left on device"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("no trace was written"), std::string::npos) << err;
}

// fork() while four other threads write their own chunks: every child's
// trace is whole and holds its own 7 allocations only (the threads'
// chunks it inherited are its parent's), and the parent's trace counts
// exactly what the threads say they made.
TEST(Hostile, ForkWhileThreadsRecordGivesWholeTraces) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"fork_threads"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  ASSERT_EQ(p.reports.size(), 21u);
  uint64_t made = std::stoull(p.run.out);
  int churn = SiteLine("fork_threads.c", "churn"), child = SiteLine("fork_threads.c", "child");
  int children = 0;
  for (const json& r : p.reports) {
    EXPECT_EQ(r["trace"]["status"], "complete");
    if (SumAtSite(r, "fork_threads.c", child, "allocations") == 0) {
      EXPECT_EQ(SumAtSite(r, "fork_threads.c", churn, "allocations"), made);
      EXPECT_EQ(SumAtSite(r, "fork_threads.c", churn, "frees"), made);
      continue;
    }
    ++children;
    EXPECT_EQ(SumAtSite(r, "fork_threads.c", child, "allocations"), 7u);
    EXPECT_EQ(SumAtSite(r, "fork_threads.c", child, "frees"), 7u);
    EXPECT_EQ(SumAtSite(r, "fork_threads.c", churn, "allocations"), 0u);
  }
  EXPECT_EQ(children, 20);
}

}  // namespace
}  // namespace pagewaste::e2e
