// The replay's answers, against figures worked out by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <unordered_map>

#include "replay/address_map.h"  // header-only, from tool/
#include "e2e_support.h"
#include "schema_check.h"

namespace pagewaste::e2e {
namespace {

using nlohmann::json;

const json* Find(const json& array, const std::string& key, const json& value) {
  for (const auto& item : array)
    if (item[key] == value) return &item;
  return nullptr;
}

TEST(WhatIf, TwoByteMappingsUnderSixteenKilobytePagesWasteAllButTwoBytes) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"mmap_two_bytes"});
  const json& r = OnlyReport(p);
  const json* sixteen = Find(r["what_if"]["page_sizes"], "page_size", 16384);
  ASSERT_NE(sixteen, nullptr) << r["what_if"].dump();
  EXPECT_EQ((*sixteen)["page_waste_bytes"], 1000 * 16382);
  EXPECT_EQ((*sixteen)["page_bytes"], 1000 * 16384);
  EXPECT_EQ((*sixteen)["peak_page_bytes"], 1000 * 16384);
  const json* huge = Find(r["what_if"]["page_sizes"], "page_size", 2 << 20);
  ASSERT_NE(huge, nullptr);
  EXPECT_EQ((*huge)["page_waste_bytes"], 1000ull * ((2 << 20) - 2));
  // The page size of the run itself reproduces what happened.
  const json* actual = Find(r["what_if"]["page_sizes"], "page_size", 4096);
  ASSERT_NE(actual, nullptr);
  EXPECT_EQ((*actual)["page_waste_bytes"], r["summary"]["page_waste_bytes"]);
}

TEST(WhatIf, ASiteOfTinyMappingsGetsTheSentenceToActOn) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"mmap_two_bytes"});
  const json& r = OnlyReport(p);
  const json* site = FindSite(r, "mmap_two_bytes.c", SiteLine("mmap_two_bytes.c", "mmap"));
  ASSERT_NE(site, nullptr);
  // 1000 one-page mappings, all live at once, mapped and unmapped: 2000
  // syscalls; two-byte objects, 256 to a 16-byte-class slab: 4 pages, 8.
  EXPECT_EQ((*site)["advice"],
            "these 1,000 requests of 2 bytes on average held up to 1,000 pages at once and cost 2,000 "
            "syscalls; a size-class allocator would have held 4 pages and made 8 syscalls: put a "
            "general purpose or arena allocator in front of the page allocator, or batch the requests");
}

TEST(WhatIf, EachAllocatorModelMatchesTheFiguresWorkedOutByHand) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"model_stream"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  const json& r = OnlyReport(p);
  ASSERT_EQ(r["process"]["page_size"], 4096);
  ASSERT_EQ(r["summary"]["allocations"], 102) << "the stream must be exactly the program's";
  const json& models = r["what_if"]["allocators"];
  // docs/what-if.md, "A worked example".
  const json* page = Find(models, "model", "page");
  ASSERT_NE(page, nullptr);
  EXPECT_EQ((*page)["peak_page_bytes"], 100 * 4096 + 2 * 12288);
  EXPECT_EQ((*page)["page_waste_bytes"], 100 * 4096 + 2 * 12288 - 30000);
  EXPECT_EQ((*page)["syscalls"], 204);
  const json* size_class = Find(models, "model", "size-class");
  ASSERT_NE(size_class, nullptr);
  EXPECT_EQ((*size_class)["peak_page_bytes"], 4 * 4096 + 2 * 12288);
  EXPECT_EQ((*size_class)["page_waste_bytes"], 4 * 4096 + 2 * 12288 - 30000);
  EXPECT_EQ((*size_class)["syscalls"], 12);
  const json* arena = Find(models, "model", "arena");
  ASSERT_NE(arena, nullptr);
  EXPECT_EQ((*arena)["peak_page_bytes"], 65536);
  EXPECT_EQ((*arena)["page_waste_bytes"], 65536 - 30000);
  EXPECT_EQ((*arena)["syscalls"], 2);
}

TEST(WhereMemoryWent, ReconcilesRequestedSlackRoundingAndMappings) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"model_stream"});
  const json& r = OnlyReport(p);
  const json& m = r["where_memory_went"];
  // All 102 blocks are live at once: the moment the program held the most.
  EXPECT_EQ(m["requested_bytes"], 30000);
  EXPECT_EQ(m["allocator_slack_bytes"], r["summary"]["usable_bytes"].get<uint64_t>() - 30000);
  EXPECT_EQ(m["page_rounding_bytes"], 0);
  EXPECT_EQ(m["direct_mapping_bytes"], 0);
  EXPECT_EQ(m["total_bytes"], r["summary"]["usable_bytes"]);
  // The brk heap at that moment: its live blocks (usable bytes and an 8-byte
  // header each) and what it held beyond them add up to its size, which the
  // trace's last heap record gives.
  ASSERT_TRUE(m["kept_after_free_bytes"].is_number()) << m.dump();
  CommandResult dump = RunCapture({PagewastePath(), "dump", p.traces[0]});
  uint64_t heap_size = 0;
  std::istringstream lines(dump.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("brk ", 0) != 0 || line.find("flags=64") == std::string::npos) continue;
    uint64_t old_break = std::stoull(line.substr(line.find("old=") + 4), nullptr, 16);
    uint64_t new_break = std::stoull(line.substr(line.find("new=") + 4), nullptr, 16);
    heap_size = new_break - old_break;
  }
  ASSERT_GT(heap_size, 0u);
  uint64_t blocks = r["summary"]["usable_bytes"].get<uint64_t>() + 102 * 8;
  EXPECT_EQ(m["kept_after_free_bytes"].get<uint64_t>() + blocks, heap_size);
  TempDir dir2;
  Profile maps = ProfileProgram(dir2, {"mmap_two_bytes"});
  const json& m2 = OnlyReport(maps)["where_memory_went"];
  EXPECT_EQ(m2["direct_mapping_bytes"], 1000 * 4096);
  EXPECT_EQ(m2["total_bytes"], m2["direct_mapping_bytes"].get<uint64_t>() + m2["requested_bytes"].get<uint64_t>() +
                                   m2["allocator_slack_bytes"].get<uint64_t>());
}

TEST(WhatIf, TheOptionNamesWhatToCompare) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"mmap_two_bytes"});
  CommandResult r = RunCapture({PagewastePath(), "report", "--format", "json", "--what-if",
                                "page-size=64K", "--what-if", "allocator=size-class", p.traces[0]});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = ParseReport(r.out);
  ASSERT_EQ(j["what_if"]["page_sizes"].size(), 1u);
  EXPECT_EQ(j["what_if"]["page_sizes"][0]["page_size"], 65536);
  EXPECT_EQ(j["what_if"]["page_sizes"][0]["page_waste_bytes"], 1000 * 65534);
  ASSERT_EQ(j["what_if"]["allocators"].size(), 1u);
  EXPECT_EQ(j["what_if"]["allocators"][0]["model"], "size-class");
  // 1000 two-byte objects: class 16, 256 to a slab: 4 slabs, 4 mmap + 4 munmap.
  EXPECT_EQ(j["what_if"]["allocators"][0]["peak_page_bytes"], 4 * 4096);
  EXPECT_EQ(j["what_if"]["allocators"][0]["syscalls"], 8);
  // Not a power of two, too small for a page, and 2^63 (whose waste would
  // wrap): each refused, with the range.
  for (const char* size : {"page-size=3000", "page-size=16", "page-size=9223372036854775808"}) {
    CommandResult bad = RunCapture({PagewastePath(), "report", "--what-if", size, p.traces[0]});
    EXPECT_EQ(bad.exit_code, 2) << size;
    EXPECT_NE(bad.err.find("a power of two from 4K to 1G"), std::string::npos) << bad.err;
  }
  for (const char* top : {"-1", "0", "99999999999999999999"}) {
    CommandResult bad = RunCapture({PagewastePath(), "report", "--top", top, p.traces[0]});
    EXPECT_EQ(bad.exit_code, 2) << top;
    EXPECT_NE(bad.err.find("--top: Value"), std::string::npos) << bad.err;
  }
}

TEST(Peak, IsTheMomentOfMostPagesWithTheSitesThatHeldThemThen) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"peak"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  const json& r = OnlyReport(p);
  ASSERT_EQ(r["process"]["page_size"], 4096);
  const json& peak = r["peak"];
  EXPECT_EQ(peak["page_bytes"], 30 * 4096);
  EXPECT_EQ(peak["live_mappings"], 30);
  ASSERT_EQ(peak["sites"].size(), 2u) << peak.dump();
  // B held 20 pages and A 10; C, whose pages came after, held none then.
  auto at = [](const json& site, int line) {
    for (const auto& f : site["frames"])
      if (f["line"] == line && f["file"].get<std::string>().find("peak.c") != std::string::npos)
        return true;
    return false;
  };
  EXPECT_TRUE(at(peak["sites"][0], SiteLine("peak.c", "b"))) << peak["sites"][0].dump();
  EXPECT_EQ(peak["sites"][0]["page_bytes"], 20 * 4096);
  EXPECT_TRUE(at(peak["sites"][1], SiteLine("peak.c", "a"))) << peak["sites"][1].dump();
  EXPECT_EQ(peak["sites"][1]["page_bytes"], 10 * 4096);
  // At exit: B's 20 and C's 5 are still there.
  EXPECT_EQ(SumAtSite(r, "peak.c", SiteLine("peak.c", "c"), "leaked_allocations"), 5u);
}

TEST(Timeline, KeepsThePeakAtAnyResolution) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"peak"});
  ASSERT_EQ(p.traces.size(), 1u);
  for (int samples : {60, 4, 1}) {
    CommandResult r = RunCapture({PagewastePath(), "report", "--format", "json", "--timeline-samples",
                                  std::to_string(samples), p.traces[0]});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    json j = ParseReport(r.out);
    const json& timeline = j["timeline"]["samples"];
    ASSERT_FALSE(timeline.empty());
    EXPECT_LE(timeline.size(), 2u * samples);
    uint64_t highest = 0, last_time = 0;
    for (const auto& t : timeline) {
      highest = std::max(highest, t["page_bytes"].get<uint64_t>());
      EXPECT_GE(t["time_ns"].get<uint64_t>(), last_time);
      last_time = t["time_ns"].get<uint64_t>();
      // Own mappings of whole pages: no page-rounding waste in this program.
      EXPECT_EQ(t["page_waste_bytes"], 0);
    }
    EXPECT_EQ(highest, 30u * 4096) << "the peak must survive sampling";
  }
}

TEST(SeveralTraces, OneReportPerProcessAndACombinedTotal) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"fork_exec", ProgramPath("exec_target")});
  ASSERT_EQ(p.traces.size(), 3u);
  std::vector<std::string> argv = {PagewastePath(), "report", "--format", "json"};
  argv.insert(argv.end(), p.traces.begin(), p.traces.end());
  CommandResult r = RunCapture(argv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = ParseDocument(r.out);
  ASSERT_EQ(j["processes"].size(), 3u);
  uint64_t allocations = 0, requested = 0;
  for (const auto& report : j["processes"]) {
    allocations += report["summary"]["allocations"].get<uint64_t>();
    requested += report["summary"]["requested_bytes"].get<uint64_t>();
  }
  EXPECT_EQ(j["combined"]["processes"], 3);
  EXPECT_EQ(j["combined"]["summary"]["allocations"], allocations);
  EXPECT_EQ(j["combined"]["summary"]["requested_bytes"], requested);
  // The combined call sites are every process's, merged by key: they sum
  // to the combined totals, and the parent's and the child's sites (one
  // binary, one key) are one site in two processes.
  uint64_t site_allocations = 0;
  for (const auto& site : j["combined"]["call_sites"])
    site_allocations += site["allocations"].get<uint64_t>();
  EXPECT_EQ(site_allocations, allocations);
  // 11 in the parent, 22 in the child and 33 in the exec'd image at their
  // lines, and whatever the C library allocated besides.
  EXPECT_GE(allocations, 11u + 22u + 33u);
  argv[3] = "text";
  CommandResult text = RunCapture(argv);
  EXPECT_EQ(text.out.find("pagewaste report: 3 processes, combined"), 0u) << text.out.substr(0, 200);
}

TEST(Leaks, ThirtySevenBlocksOfAHundredBytesFromOneSite) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"leak37"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  const json& r = OnlyReport(p);
  int leak = SiteLine("leak37.c", "leak");
  int temporary = SiteLine("leak37.c", "temporary");
  EXPECT_EQ(SumAtSite(r, "leak37.c", leak, "leaked_allocations"), 37u);
  EXPECT_EQ(SumAtSite(r, "leak37.c", leak, "leaked_bytes"), 3700u);
  EXPECT_EQ(SumAtSite(r, "leak37.c", temporary, "leaked_allocations"), 0u);
  EXPECT_EQ(SumAtSite(r, "leak37.c", temporary, "allocations"), 10u);
  // free(malloc(100)): each freed before any other allocation.
  EXPECT_EQ(SumAtSite(r, "leak37.c", temporary, "temporary_allocations"), 10u);
  EXPECT_EQ(SumAtSite(r, "leak37.c", leak, "temporary_allocations"), 0u);
  const json* site = FindSite(r, "leak37.c", temporary);
  ASSERT_NE(site, nullptr);
  uint64_t freed = 0;
  for (const auto& [bucket, n] : (*site)["lifetimes"].items()) freed += n.get<uint64_t>();
  EXPECT_EQ(freed, 10u);
  EXPECT_EQ(r["summary"]["leaked_bytes"], 3700);
  EXPECT_EQ(r["summary"]["leaked_allocations"], 37);
  // And the leaks section leads with that site, alone.
  ASSERT_EQ(r["leak_sites"].size(), 1u);
  EXPECT_EQ(r["leak_sites"][0]["leaked_allocations"], 37);
  EXPECT_EQ(r["leak_sites"][0]["leaked_bytes"], 3700);
}

TEST(Sampling, EstimatesTheSmallCallsAndRecordsEveryOneThatEntersTheKernel) {
  // sampled.c under --sample 1000: 100,000 malloc(100) are picked with
  // probability 1 - e^-0.1 each, about 9,516, each standing for 10.5; the
  // 50 malloc(1 MiB) each make an mmap and are recorded as they are.
  TempDir dir;
  Profile p = ProfileProgram(dir, {"sampled"}, {"--sample", "1000"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  const json& r = OnlyReport(p);
  EXPECT_EQ(r["trace"]["sample_interval_bytes"], 1000);
  int large = SiteLine("sampled.c", "large");
  EXPECT_EQ(SumAtSite(r, "sampled.c", large, "allocations"), 50u);
  EXPECT_EQ(SumAtSite(r, "sampled.c", large, "requested_bytes"), 50u << 20);
  EXPECT_EQ(SyscallsAtSite(r, "sampled.c", large, "mmap"), 50u);
  EXPECT_EQ(SyscallsAtSite(r, "sampled.c", SiteLine("sampled.c", "large_free"), "munmap"), 50u);
  const json* large_site = FindSite(r, "sampled.c", large);
  ASSERT_NE(large_site, nullptr);
  EXPECT_EQ((*large_site)["sampling_error_bytes"], 0) << "recorded each, not estimated";
  int small = SiteLine("sampled.c", "small");
  uint64_t allocations = SumAtSite(r, "sampled.c", small, "allocations");
  uint64_t requested = SumAtSite(r, "sampled.c", small, "requested_bytes");
  // About 1% is one standard error; 5% is five.
  EXPECT_NEAR(static_cast<double>(allocations), 100000.0, 5000.0);
  EXPECT_EQ(requested, allocations * 100);
  EXPECT_EQ(SumAtSite(r, "sampled.c", small, "frees"), allocations);
  // The error the report states covers the actual one.
  const json* site = FindSite(r, "sampled.c", small);
  ASSERT_NE(site, nullptr);
  uint64_t error = (*site)["sampling_error_bytes"];
  EXPECT_GT(error, 0u);
  EXPECT_LE(std::abs(static_cast<double>(requested) - 1e7), 5.0 * static_cast<double>(error));
  // The peak: 20,000 blocks of 100 B live at once, estimated.
  EXPECT_NEAR(r["summary"]["peak_live_bytes"].get<double>(), 2e6, 2e5);
  // Picks and their frees, not 240,100 events.
  EXPECT_LT(r["trace"]["events"].get<uint64_t>(), 30000u);
  CommandResult text = RunCapture({PagewastePath(), "report", p.traces[0]});
  EXPECT_NE(text.out.find("sampled   the malloc family, one pick per 1,000 B"), std::string::npos)
      << text.out;
}

TEST(AddressMap, MatchesAStandardMapThroughCollidingInsertsAndErases) {
  // Addresses 16 bytes apart in a small table: long runs that wrap around
  // its end, where backward-shift deletion has the most to get wrong.
  AddressMap<uint64_t> map;
  std::unordered_map<uint64_t, uint64_t> reference;
  uint64_t state = 12345;
  for (int step = 0; step < 200000; ++step) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t address = 0x7f0000000000 + 16 * ((state >> 33) % 3000);
    if ((state >> 20) & 1) {
      auto [slot, fresh] = map.Insert(address, address / 16);
      EXPECT_EQ(fresh, reference.emplace(address, address / 16).second);
      EXPECT_EQ(map.At(slot), address / 16);
    } else {
      size_t slot = map.Find(address);
      bool present = reference.erase(address) == 1;
      ASSERT_EQ(slot != AddressMap<uint64_t>::kNone, present) << step;
      if (present) map.Erase(slot);
    }
    ASSERT_EQ(map.size(), reference.size());
  }
  for (const auto& [address, value] : reference) {
    size_t slot = map.Find(address);
    ASSERT_NE(slot, AddressMap<uint64_t>::kNone);
    EXPECT_EQ(map.At(slot), value);
  }
}

}  // namespace
}  // namespace pagewaste::e2e
