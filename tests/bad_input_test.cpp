// Bad input gets one clear line and a documented exit code, never a crash,
// and loses nothing already recorded.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "e2e_support.h"
#include "schema_check.h"
#include "reader/trace_reader.h"

namespace pagewaste::e2e {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::vector<char> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void WriteFile(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

int Lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

// A real trace to damage: malloc_count's.
std::string GoodTrace(const TempDir& dir, const std::vector<std::string>& run_options = {}) {
  Profile p = ProfileProgram(dir, {"malloc_count"}, run_options);
  EXPECT_EQ(p.traces.size(), 1u);
  return p.traces.empty() ? "" : p.traces[0];
}

CommandResult Report(const std::string& trace, const std::string& format = "json") {
  return RunCapture({PagewastePath(), "report", "--format", format, trace});
}

TEST(BadInput, UnreadableTracesGetOneLineAndExitCode3) {
  TempDir dir;
  std::string good = GoodTrace(dir);
  std::vector<char> bytes = ReadFile(good);

  CommandResult missing = Report(dir.path() + "/nope.trace");
  EXPECT_EQ(missing.exit_code, 3);
  EXPECT_NE(missing.err.find("No such file or directory"), std::string::npos) << missing.err;
  EXPECT_EQ(Lines(missing.err), 1);

  WriteFile(dir.path() + "/empty.trace", {});
  CommandResult empty = Report(dir.path() + "/empty.trace");
  EXPECT_EQ(empty.exit_code, 3);
  EXPECT_NE(empty.err.find("empty file"), std::string::npos) << empty.err;
  EXPECT_EQ(Lines(empty.err), 1);

  WriteFile(dir.path() + "/text.trace", {'h', 'e', 'l', 'l', 'o', '\n'});
  CommandResult text = Report(dir.path() + "/text.trace");
  EXPECT_EQ(text.exit_code, 3);
  EXPECT_NE(text.err.find("not a pagewaste trace"), std::string::npos) << text.err;

  std::vector<char> newer = bytes;
  newer[8] = 9;  // format version 9
  WriteFile(dir.path() + "/newer.trace", newer);
  CommandResult future = Report(dir.path() + "/newer.trace");
  EXPECT_EQ(future.exit_code, 3);
  EXPECT_NE(future.err.find("version 9 is not supported"), std::string::npos) << future.err;
  EXPECT_EQ(Lines(future.err), 1);
  EXPECT_EQ(future.out, "");
}

// The JSON report of good without its last `bytes` bytes, which must say
// in one line that the trace is truncated, and exit 4.
json ReportOfCut(const TempDir& dir, const std::string& good, size_t bytes) {
  std::vector<char> whole = ReadFile(good);
  std::vector<char> cut(whole.begin(), whole.end() - static_cast<ptrdiff_t>(bytes));
  WriteFile(dir.path() + "/cut.trace", cut);
  CommandResult r = Report(dir.path() + "/cut.trace");
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_NE(r.err.find("truncated"), std::string::npos) << r.err;
  EXPECT_EQ(Lines(r.err), 1);
  json report = ParseReport(r.out);
  EXPECT_EQ(report["trace"]["status"], "truncated");
  return report;
}

TEST(BadInput, TruncatedTraceReportsWhatItHoldsAndSaysSo) {
  TempDir dir;
  // Without its symbol section, so that the cut falls among the events.
  std::string good = GoodTrace(dir, {"--no-symbolize"});
  json full = ParseReport(Report(good).out);
  // Cut in the middle of the last chunk: the earlier chunks still count.
  json report = ReportOfCut(dir, good, 100);
  EXPECT_TRUE(report["trace"]["truncated"].get<bool>());
  EXPECT_TRUE(report["process"]["exit"].is_null());
  EXPECT_LE(report["summary"]["allocations"], full["summary"]["allocations"]);
  // Text says it too, in the report itself.
  CommandResult text = Report(dir.path() + "/cut.trace", "text");
  EXPECT_EQ(text.exit_code, 4);
  EXPECT_NE(text.out.find("WARNING   the trace is truncated"), std::string::npos);
}

// Cut inside the symbol section: every event is there, the names are not.
TEST(BadInput, ACutSymbolSectionKeepsEveryEvent) {
  TempDir dir;
  std::string good = GoodTrace(dir);
  json full = ParseReport(Report(good).out);
  json report = ReportOfCut(dir, good, 10);
  EXPECT_EQ(report["process"]["exit"]["reason"], "exit");
  EXPECT_EQ(report["summary"]["allocations"], full["summary"]["allocations"]);
  EXPECT_EQ(report["summary"]["frees"], full["summary"]["frees"]);
}

class CorruptBytes : public testing::TestWithParam<bool> {};

TEST_P(CorruptBytes, NeverCrashTheReport) {
  TempDir dir;
  bool compressed = GetParam();
  std::string good = GoodTrace(dir, compressed ? std::vector<std::string>{}
                                               : std::vector<std::string>{"--no-compress"});
  std::vector<char> bytes = ReadFile(good);
  // The first chunk after the header is compressed in one case, plain in
  // the other.
  std::string err;
  TraceReader reader(OpenFileSource(good, &err));
  TraceHeader header;
  ASSERT_TRUE(reader.ReadHeader(&header, &err)) << err;
  ASSERT_LT(reader.offset() + format::kChunkPrefixSize, bytes.size());
  uint8_t chunk_flags = static_cast<uint8_t>(bytes[reader.offset() + 4]);
  EXPECT_EQ((chunk_flags & format::kChunkZstd) != 0, compressed);
  // Damage a spread of positions past the header; every outcome must be a
  // documented exit code with a one-line message, never a crash.
  for (size_t pos = 100; pos < bytes.size(); pos += std::max<size_t>(1, bytes.size() / 60)) {
    std::vector<char> damaged = bytes;
    damaged[pos] = static_cast<char>(damaged[pos] ^ 0x5a);
    std::string path = dir.path() + "/damaged.trace";
    WriteFile(path, damaged);
    CommandResult r = Report(path);
    EXPECT_TRUE(r.exit_code == 0 || r.exit_code == 3 || r.exit_code == 4)
        << "byte " << pos << ": exit " << r.exit_code << " " << r.err;
    EXPECT_LE(Lines(r.err), 1) << r.err;
  }
}

INSTANTIATE_TEST_SUITE_P(BadInput, CorruptBytes, testing::Bool(),
                         [](const auto& info) { return info.param ? "compressed" : "plain"; });

TEST(BadInput, KillNineLeavesAReadableTruncatedTrace) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"killed"});
  EXPECT_EQ(p.run.exit_code, 128 + 9);
  ASSERT_EQ(p.traces.size(), 1u);
  CommandResult r = Report(p.traces[0]);
  EXPECT_EQ(r.exit_code, 4);
  json report = ParseReport(r.out);
  EXPECT_EQ(report["trace"]["status"], "truncated");
  uint64_t recorded = SumAtSite(report, "killed.c", SiteLine("killed.c", "leak"), "allocations");
  // Records go straight into a shared mapping of the file: SIGKILL loses
  // none of them.
  EXPECT_EQ(recorded, 100000u);
  EXPECT_NE(report["trace"]["message"].get<std::string>().find("no end record"), std::string::npos);
}

TEST(BadInput, KillNineWithThreadsAliveLosesNoCommittedRecord) {
  // Four threads' chunks, none finished: the reader merges them all.
  TempDir dir;
  Profile p = ProfileProgram(dir, {"killed_threads"});
  EXPECT_EQ(p.run.exit_code, 128 + 9);
  ASSERT_EQ(p.reports.size(), 1u);
  EXPECT_EQ(p.reports[0]["trace"]["status"], "truncated");
  int line = SiteLine("killed_threads.c", "leak");
  EXPECT_EQ(SumAtSite(p.reports[0], "killed_threads.c", line, "allocations"), 100000u);
  EXPECT_EQ(SumAtSite(p.reports[0], "killed_threads.c", line, "leaked_allocations"), 100000u);
}

TEST(BadInput, KillNineWithTheWriteSinkKeepsTheFinishedChunks) {
  // PAGEWASTE_SINK=write is the fallback for file systems without
  // fallocate: whole chunks go out with write(2), and SIGKILL costs only the
  // chunk in memory.
  TempDir dir;
  setenv("PAGEWASTE_SINK", "write", 1);
  Profile p = ProfileProgram(dir, {"killed"});
  unsetenv("PAGEWASTE_SINK");
  ASSERT_EQ(p.reports.size(), 1u);
  EXPECT_EQ(p.reports[0]["trace"]["status"], "truncated");
  uint64_t recorded = SumAtSite(p.reports[0], "killed.c", SiteLine("killed.c", "leak"), "allocations");
  EXPECT_GT(recorded, 50000u);
  EXPECT_LT(recorded, 100000u);
}

TEST(BadInput, SchemaCheckerRejectsUndocumentedAndMissingFields) {
  TempDir dir;
  json report = json::parse(Report(GoodTrace(dir)).out);
  EXPECT_EQ(SchemaViolation(ReportSchema(), report), "");
  json extra = report;
  extra["processes"][0]["summary"]["surprise"] = 1;
  EXPECT_NE(SchemaViolation(ReportSchema(), extra), "");
  json missing = report;
  missing["combined"]["summary"].erase("page_waste_bytes");
  EXPECT_NE(SchemaViolation(ReportSchema(), missing), "");
  json dangling = report;
  dangling["processes"][0]["call_sites"][0]["stack"] = "seven";
  EXPECT_NE(SchemaViolation(ReportSchema(), dangling), "");
}

TEST(BadInput, BadCommandLinesExitWith2) {
  EXPECT_EQ(RunCapture({PagewastePath()}).exit_code, 2);
  EXPECT_EQ(RunCapture({PagewastePath(), "report"}).exit_code, 2);
  EXPECT_EQ(RunCapture({PagewastePath(), "report", "--format", "xml", "x"}).exit_code, 2);
  EXPECT_EQ(RunCapture({PagewastePath(), "run"}).exit_code, 2);
}

}  // namespace
}  // namespace pagewaste::e2e
