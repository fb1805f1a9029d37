// check and diff from memory: traces written in the test, replayed and
// rendered as the JSON document they read, held to limits and compared.
#include "check.h"

#include <gtest/gtest.h>

#include <map>

#include "diff.h"
#include "memory_trace.h"
#include "render/render.h"

namespace pagewaste {
namespace {

using memory_trace::TraceBuilder;

constexpr uint64_t kBase = 0x7f0000000000;

// A program that maps `pages` two-byte pages and unmaps them, as the JSON
// report check and diff read.
ReportDocument TwoBytePages(uint64_t pages) {
  TraceBuilder t;
  for (uint64_t i = 0; i < pages; ++i) t.Mmap(kBase + i * 4096, 2);
  for (uint64_t i = 0; i < pages; ++i) t.Munmap(kBase + i * 4096, 2);
  std::string json = RenderJson({t.Replay()}, RenderOptions{});
  ReportDocument doc;
  std::string err;
  EXPECT_TRUE(doc.Parse(json, "memory.json", &err)) << err;
  return doc;
}

TEST(CheckFromMemory, AWholeRunLimitFailsByTheFigureAndNamesTheSiteThatMadeIt) {
  ReportDocument report = TwoBytePages(1000);
  Budget budget;
  std::string err;
  ASSERT_TRUE(ParseBudget(R"({"limits": [
      {"metric": "page_waste_bytes", "max": "4000000"},
      {"metric": "syscalls.mmap", "max": 1000},
      {"metric": "peak_live_mappings", "max": 999}]})",
                          &budget, &err))
      << err;
  CheckResult result;
  ASSERT_TRUE(EvaluateBudget(report, nullptr, budget, &result, &err)) << err;
  ASSERT_EQ(result.limits.size(), 3u);
  const LimitResult& waste = result.limits[0];
  EXPECT_FALSE(waste.passed);
  EXPECT_TRUE(waste.bytes);
  EXPECT_EQ(waste.value, 4'094'000u);
  EXPECT_EQ(waste.threshold, 4'000'000u);
  ASSERT_EQ(waste.sites.size(), 1u);  // the mmap line; the munmap line wastes nothing
  EXPECT_EQ(waste.sites[0].value, 4'094'000u);
  const LimitResult& mmaps = result.limits[1];
  EXPECT_TRUE(mmaps.passed);
  EXPECT_EQ(mmaps.value, 1000u);
  const LimitResult& live = result.limits[2];
  EXPECT_FALSE(live.passed);
  EXPECT_EQ(live.value, 1000u);
  EXPECT_EQ(result.failed(), 2u);
}

TEST(CheckFromMemory, ARelativeLimitHoldsTheFigureToTheBaselinePlusAPercentOfIt) {
  ReportDocument base = TwoBytePages(1000), now = TwoBytePages(1010);
  std::string err;
  // 1% of 1000 mmaps is 10: 1010 passes, and fails at 0.9%.
  for (double percent : {1.0, 0.9}) {
    Budget budget;
    ASSERT_TRUE(ParseBudget(R"({"limits": [{"metric": "syscalls.mmap", "baseline": {"percent": )" +
                                std::to_string(percent) + "}}]}",
                            &budget, &err))
        << err;
    CheckResult result;
    ASSERT_TRUE(EvaluateBudget(now, &base, budget, &result, &err)) << err;
    ASSERT_EQ(result.limits.size(), 1u);
    EXPECT_EQ(result.limits[0].value, 1010u);
    EXPECT_EQ(result.limits[0].baseline, 1000u);
    EXPECT_EQ(result.limits[0].threshold, percent == 1.0 ? 1010u : 1009u);
    EXPECT_EQ(result.limits[0].passed, percent == 1.0);
  }
}

TEST(DiffFromMemory, TenMoreTwoBytePagesAre40940BytesMoreWaste) {
  DiffResult d = Diff(TwoBytePages(1000), TwoBytePages(1010), 5.0);
  std::map<std::string, DiffFigure> totals;
  for (const DiffFigure& f : d.totals) totals[f.metric] = f;
  ASSERT_EQ(totals.count("waste_bytes"), 1u);
  EXPECT_EQ(totals["waste_bytes"].base, 4'094'000u);
  EXPECT_EQ(totals["waste_bytes"].now, 4'134'940u);
  EXPECT_EQ(totals["syscalls"].change(), 20);  // 10 mmaps and their 10 munmaps
  EXPECT_EQ(totals["peak_page_bytes"].change(), 40'960);
  EXPECT_EQ(totals["allocations"].change(), 0);
  // 1% more: within the 5% that fails a diff.
  EXPECT_TRUE(d.regressions.empty());
  // The site whose waste changed most comes first. (Unsymbolized, the two
  // lines' frames are module+offset, and diff matches sites across builds
  // by function names without offsets: here they are one site.)
  ASSERT_FALSE(d.sites.empty());
  EXPECT_EQ(d.sites[0].Change("waste_bytes"), 40'940);
}

}  // namespace
}  // namespace pagewaste
