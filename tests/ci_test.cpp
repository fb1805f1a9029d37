// The CI side of pagewaste (docs/ci.md): the compact JSON, `check` with its
// limits, budgets and baselines, `diff`, and the formats CI systems read.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "e2e_support.h"

namespace pagewaste::e2e {
namespace {

using nlohmann::json;

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The documented fields that vary between runs of a deterministic program
// (docs/report.schema.json): times, time shares, the timeline, lifetimes,
// and the run's identity.
void DropRunFields(json* j) {
  if (j->is_object()) {
    for (auto it = j->begin(); it != j->end();) {
      const std::string& key = it.key();
      bool timing = (key.size() > 3 && key.compare(key.size() - 3, 3, "_ns") == 0) ||
                    (key.size() > 6 && key.compare(key.size() - 6, 6, "_share") == 0);
      bool identity =
          key == "pid" || key == "ppid" || key == "tid" || key == "path" || key == "file_bytes";
      if (timing || identity || key == "timeline" || key == "lifetimes") {
        it = j->erase(it);
      } else {
        DropRunFields(&it.value());
        ++it;
      }
    }
  } else if (j->is_array()) {
    for (auto& v : *j) DropRunFields(&v);
  }
}

std::string JsonOf(const std::string& trace) {
  CommandResult r = RunCapture({PagewastePath(), "report", "--format", "json", trace});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.out;
}

TEST(CompactJson, TwoRunsOfADeterministicProgramGiveTheSameJsonWithoutTheTimingFields) {
  TempDir one, two;
  Profile a = ProfileProgram(one, {"budget"});
  Profile b = ProfileProgram(two, {"budget"});
  ASSERT_EQ(a.traces.size(), 1u);
  ASSERT_EQ(b.traces.size(), 1u);
  json ja = ParseDocument(JsonOf(a.traces[0]));
  json jb = ParseDocument(JsonOf(b.traces[0]));
  // The timing fields do differ (the pids at least), so the test compares
  // something.
  EXPECT_NE(ja, jb);
  DropRunFields(&ja);
  DropRunFields(&jb);
  EXPECT_EQ(ja.dump(1), jb.dump(1));
}

TEST(CompactJson, FramesAndStacksAreWrittenOnceAndSitesNameThem) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"budget"});
  ASSERT_EQ(p.traces.size(), 1u);
  json doc = ParseDocument(JsonOf(p.traces[0]));
  // Every frame once: no two entries of the frame table are equal, nor two
  // nodes of the stack tree.
  std::set<std::string> frames, nodes;
  for (const auto& f : doc["frames"]) EXPECT_TRUE(frames.insert(f.dump()).second) << f;
  for (const auto& n : doc["stacks"]) EXPECT_TRUE(nodes.insert(n.dump()).second) << n;
  // The pages site's stack, innermost first: Map, page_objects, main.
  const json& process = p.reports[0];
  const json* site = FindSite(process, "budget.c", SiteLine("budget.c", "pages"));
  ASSERT_NE(site, nullptr);
  EXPECT_EQ((*site)["frames"][0]["function"], "Map");
  EXPECT_EQ((*site)["frames"][1]["function"], "page_objects");
  EXPECT_EQ((*site)["frames"][2]["function"], "main");
  EXPECT_EQ((*site)["page_waste_bytes"], 100 * (4096 - 100));
  // One process: the combined view holds its figures, and its peak.
  const json& combined = doc["combined"];
  EXPECT_EQ(combined["processes"], 1);
  EXPECT_EQ(combined["summary"]["page_waste_bytes"], process["summary"]["page_waste_bytes"]);
  EXPECT_EQ(combined["summary"]["allocations"], 53);
  EXPECT_EQ(combined["peak"]["page_bytes"], process["summary"]["peak_page_bytes"]);
  EXPECT_EQ(combined["peak"]["page_bytes"], 100 * 4096);
  ASSERT_EQ(combined["peak"]["processes"].size(), 1u);
  EXPECT_EQ(combined["peak"]["processes"][0]["process"], 0);
}

}  // namespace
}  // namespace pagewaste::e2e

namespace pagewaste::e2e {
namespace {

// The two builds of tests/programs/budget.c, profiled once for the tests
// below.
struct BudgetRuns {
  TempDir dir;
  std::string base;   // budget
  std::string extra;  // budget_extra: one more page-allocator call site
  json doc;           // the base's JSON report
  BudgetRuns() {
    Profile a = ProfileProgram(dir, {"budget"});
    EXPECT_EQ(a.traces.size(), 1u);
    base = dir.path() + "/base.trace";
    rename(a.traces.at(0).c_str(), base.c_str());
    Profile b = ProfileProgram(dir, {"budget_extra"});
    for (const std::string& t : b.traces)
      if (t != base) extra = t;
    doc = ParseDocument(JsonOf(base));
  }
};

const BudgetRuns& Runs() {
  static BudgetRuns* runs = new BudgetRuns;
  return *runs;
}

CommandResult Check(const std::vector<std::string>& options, const std::string& input) {
  std::vector<std::string> argv = {PagewastePath(), "check"};
  argv.insert(argv.end(), options.begin(), options.end());
  argv.push_back(input);
  return RunCapture(argv);
}

std::string WriteBudget(const TempDir& dir, const json& budget) {
  static int n = 0;
  std::string path = dir.path() + "/budget" + std::to_string(++n) + ".json";
  std::ofstream(path) << budget.dump();
  return path;
}

uint64_t SummaryValue(const json& summary, const std::string& metric) {
  if (metric.rfind("syscalls", 0) == 0)
    return summary["syscalls"][metric == "syscalls" ? "total" : metric.substr(9)].get<uint64_t>();
  return summary[metric].get<uint64_t>();
}

TEST(CompactJson, SitesPastTheFirstByEachRankingAreSummedInOtherSites) {
  CommandResult r =
      RunCapture({PagewastePath(), "report", "--format", "json", "--top", "1", Runs().extra});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json doc = ParseDocument(r.out);
  json every = ParseDocument(JsonOf(Runs().extra));
  for (const char* name : {"combined", "process"}) {
    bool is_combined = name == std::string("combined");
    const json& part = is_combined ? doc["combined"] : doc["processes"][0];
    size_t all = (is_combined ? every["combined"] : every["processes"][0])["call_sites"].size();
    json expanded = Expanded(doc, part);
    // The first by waste (Map's mmap), by allocations (heap_objects), by
    // bytes live at exit (kept_objects), by system calls (one of the 100s);
    // extra_pages is first in nothing.
    std::set<std::string> functions;
    for (const json& site : expanded["call_sites"])
      functions.insert(site["frames"][0]["function"].get<std::string>());
    for (const char* f : {"Map", "heap_objects", "kept_objects"})
      EXPECT_EQ(functions.count(f), 1u) << name << " " << f;
    EXPECT_EQ(functions.count("extra_pages"), 0u) << name;
    EXPECT_GE(part["other_sites"]["sites"].get<size_t>(), 1u);
    EXPECT_EQ(part["other_sites"]["sites"].get<size_t>() + part["call_sites"].size(), all) << name;
    for (const char* field :
         {"allocations", "frees", "unmappings", "page_waste_bytes", "leaked_bytes"}) {
      uint64_t sum = part["other_sites"][field].get<uint64_t>();
      for (const json& site : part["call_sites"]) sum += site[field].get<uint64_t>();
      EXPECT_EQ(sum, part["summary"][field].get<uint64_t>()) << name << " " << field;
    }
    // extra_pages' 10 mappings of 10 bytes are in the sum.
    EXPECT_GE(part["other_sites"]["page_waste_bytes"].get<uint64_t>(), 40860u) << name;
  }
  EXPECT_EQ(every["combined"]["other_sites"]["sites"], 0);
}

TEST(CompactJson, TheCombinedViewMergesSitesByKeyAndCountsEachProcessOnce) {
  // The same program twice: each combined site is in both processes, with
  // twice the figures; heap_objects' two calls on one line (two stacks, one
  // key) are one site in each process's report, and one in 2 processes,
  // not 4, in the combined view.
  CommandResult r = RunCapture({PagewastePath(), "report", "--format", "json", "--all-sites",
                                Runs().base, Runs().base});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json doc = ParseDocument(r.out);
  const json& process = doc["processes"][0];
  json combined = Expanded(doc, doc["combined"]);
  json expanded_process = Expanded(doc, process);
  int heap_stacks = 0;
  for (const json& site : expanded_process["call_sites"])
    if (site["frames"][0]["function"] == "heap_objects") ++heap_stacks;
  EXPECT_EQ(heap_stacks, 1);
  EXPECT_EQ(combined["call_sites"].size(), process["call_sites"].size());
  for (const json& site : combined["call_sites"]) {
    EXPECT_EQ(site["processes"], 2) << site["key"];
    if (site["frames"][0]["function"] == "heap_objects") EXPECT_EQ(site["allocations"], 100);
    if (site["frames"][0]["function"] == "Map") EXPECT_EQ(site["page_waste_bytes"], 2 * 399600);
  }
  EXPECT_EQ(doc["combined"]["summary"]["allocations"], 2 * 53);
}

TEST(Check, TheFiguresOfTheKnownProgramAreExact) {
  const json& s = Runs().doc["combined"]["summary"];
  EXPECT_EQ(s["allocations"], 53);  // 50 + 3
  EXPECT_EQ(s["mappings"], 100);
  EXPECT_EQ(s["page_waste_bytes"], 399600);  // 100 x (4096 - 100)
  EXPECT_EQ(s["page_bytes"], 409600);
  EXPECT_EQ(s["peak_page_bytes"], 409600);
  EXPECT_EQ(s["peak_live_mappings"], 100);
  EXPECT_EQ(s["leaked_bytes"], 3000);
  EXPECT_EQ(s["syscalls"]["mmap"], 100);
  EXPECT_EQ(s["syscalls"]["munmap"], 100);
}

// Every metric: a limit at its value holds, one below fails.
TEST(Check, EachLimitPassesAtItsValueAndFailsJustBelow) {
  TempDir dir;
  const json& summary = Runs().doc["combined"]["summary"];
  for (const char* metric : {"allocations", "mappings", "requested_bytes", "page_bytes",
                             "page_waste_bytes", "estimated_waste_bytes", "waste_bytes", "syscalls",
                             "syscalls.mmap", "syscalls.munmap", "syscalls.brk", "leaked_bytes",
                             "leaked_allocations", "peak_page_bytes", "peak_live_mappings"}) {
    uint64_t value = SummaryValue(summary, metric);
    std::string at = WriteBudget(dir, {{"limits", {{{"metric", metric}, {"max", value}}}}});
    CommandResult pass = Check({"--budget", at}, Runs().base);
    EXPECT_EQ(pass.exit_code, 0) << metric << ": " << pass.out << pass.err;
    if (value == 0) continue;
    std::string under = WriteBudget(dir, {{"limits", {{{"metric", metric}, {"max", value - 1}}}}});
    CommandResult fail = Check({"--budget", under}, Runs().base);
    EXPECT_EQ(fail.exit_code, 1) << metric << ": " << fail.out << fail.err;
    // The message names the limit, its value and the limit.
    EXPECT_NE(fail.out.find(std::string("FAIL ") + metric), std::string::npos) << fail.out;
    EXPECT_NE(fail.out.find(GroupDigits(value)), std::string::npos) << metric << fail.out;
  }
}

TEST(Check, TheWholeRunFlagsPassJustUnderAndFailJustOver) {
  const json& summary = Runs().doc["combined"]["summary"];
  struct Flag {
    const char* option;
    const char* metric;
  };
  for (Flag f :
       {Flag{"--max-allocations", "allocations"}, Flag{"--max-page-waste", "page_waste_bytes"},
        Flag{"--max-syscalls", "syscalls"}, Flag{"--max-peak-page-bytes", "peak_page_bytes"},
        Flag{"--max-leaked-bytes", "leaked_bytes"}}) {
    uint64_t value = SummaryValue(summary, f.metric);
    EXPECT_EQ(Check({f.option, std::to_string(value)}, Runs().base).exit_code, 0) << f.option;
    EXPECT_EQ(Check({f.option, std::to_string(value - 1)}, Runs().base).exit_code, 1) << f.option;
  }
  // Sizes take K/M/G: 400K is 409,600 bytes, the peak exactly.
  EXPECT_EQ(Check({"--max-peak-page-bytes", "400K"}, Runs().base).exit_code, 0);
  EXPECT_EQ(Check({"--max-peak-page-bytes", "399K"}, Runs().base).exit_code, 1);
}

TEST(Check, SiteLimitsMatchByFunctionLocationOrModuleAndNameTheSites) {
  TempDir dir;
  int line = SiteLine("budget.c", "map");
  auto limit = [&](json site, const char* metric, uint64_t max) {
    return WriteBudget(dir, {{"limits", {{{"metric", metric}, {"site", site}, {"max", max}}}}});
  };
  // page_objects maps 100 pages (through Map) and unmaps them.
  EXPECT_EQ(
      Check({"--budget", limit({{"function", "page_obj*"}}, "syscalls.mmap", 100)}, Runs().base)
          .exit_code,
      0);
  CommandResult over =
      Check({"--budget", limit({{"function", "page_obj*"}}, "syscalls.mmap", 99)}, Runs().base);
  EXPECT_EQ(over.exit_code, 1);
  EXPECT_NE(over.out.find("Map ("), std::string::npos) << over.out;
  EXPECT_NE(over.out.find("budget.c:" + std::to_string(line)), std::string::npos) << over.out;
  std::string at_line = "budget.c:" + std::to_string(line);
  EXPECT_EQ(
      Check({"--budget", limit({{"location", at_line}}, "page_waste_bytes", 399600)}, Runs().base)
          .exit_code,
      0);
  EXPECT_EQ(
      Check({"--budget", limit({{"location", at_line}}, "page_waste_bytes", 399599)}, Runs().base)
          .exit_code,
      1);
  // Every site passes through main, in the budget executable.
  EXPECT_EQ(
      Check({"--budget", limit({{"module", "budget"}}, "allocations", 53)}, Runs().base).exit_code,
      0);
  EXPECT_EQ(
      Check({"--budget", limit({{"module", "budget"}}, "allocations", 52)}, Runs().base).exit_code,
      1);
}

TEST(Check, ASuppressionRemovesExactlyTheNamedSite) {
  TempDir dir;
  json suppress = {{"site", {{"function", "kept_objects"}}}, {"reason", "a cache for life"}};
  std::string budget = WriteBudget(dir, {{"limits",
                                          {{{"metric", "leaked_bytes"}, {"max", 0}},
                                           {{"metric", "allocations"}, {"max", 50}},
                                           {{"metric", "page_waste_bytes"}, {"max", 399600}}}},
                                         {"suppressions", {suppress}}});
  CommandResult r = Check({"--budget", budget}, Runs().base);
  // Its 3 blocks of 1,000 bytes are gone from the figures, nothing else is.
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("suppressed function kept_objects: 1 site (a cache for life)"),
            std::string::npos)
      << r.out;
  std::string tighter = WriteBudget(
      dir, {{"limits", {{{"metric", "allocations"}, {"max", 49}}}}, {"suppressions", {suppress}}});
  EXPECT_EQ(Check({"--budget", tighter}, Runs().base).exit_code, 1);
}

TEST(Check, RelativeLimitsAllowAPercentageOrAnAllowance) {
  TempDir dir;
  // The extra build makes 10 more mmap calls: 213 against 203 (or so).
  uint64_t base = Runs().doc["combined"]["summary"]["syscalls"]["total"].get<uint64_t>();
  auto relative = [&](double percent, uint64_t allowance) {
    return WriteBudget(dir, {{"limits",
                              {{{"metric", "syscalls"},
                                {"baseline", {{"percent", percent}, {"allowance", allowance}}}}}}});
  };
  EXPECT_EQ(Check({"--budget", relative(0, 10), "--baseline", Runs().base}, Runs().extra).exit_code,
            0);
  CommandResult over = Check({"--budget", relative(0, 9), "--baseline", Runs().base}, Runs().extra);
  EXPECT_EQ(over.exit_code, 1);
  EXPECT_NE(over.out.find("(baseline " + GroupDigits(base) + ")"), std::string::npos) << over.out;
  // 10 more is within 5% of 200-odd calls when the allowance is smaller.
  EXPECT_EQ(Check({"--budget", relative(5, 0), "--baseline", Runs().base}, Runs().extra).exit_code,
            0);
  EXPECT_EQ(Check({"--budget", relative(4, 0), "--baseline", Runs().base}, Runs().extra).exit_code,
            1);
  // --baseline alone holds the five whole-run figures to it: the waste grew
  // by 10%, past the default 5%.
  CommandResult defaults = Check({"--baseline", Runs().base}, Runs().extra);
  EXPECT_EQ(defaults.exit_code, 1);
  EXPECT_NE(defaults.out.find("FAIL page_waste_bytes against the baseline"), std::string::npos)
      << defaults.out;
  EXPECT_EQ(Check({"--baseline", Runs().base, "--tolerance", "11"}, Runs().extra).exit_code, 0);
  // A JSON report is as good a baseline as a trace.
  std::string saved = dir.path() + "/base.json";
  std::ofstream(saved) << JsonOf(Runs().base);
  EXPECT_EQ(Check({"--budget", relative(0, 10), "--baseline", saved}, Runs().extra).exit_code, 0);
  EXPECT_EQ(Check({"--max-syscalls", std::to_string(base)}, saved).exit_code, 0);
  EXPECT_EQ(Check({"--max-syscalls", std::to_string(base - 1)}, saved).exit_code, 1);
}

TEST(Check, MalformedBudgetsAndReportsExitTwoNamingTheField) {
  TempDir dir;
  struct Case {
    json budget;
    const char* field;
  };
  for (const Case& c : std::vector<Case>{
           {{{"limits", {{{"metric", "allocations"}, {"max", "lots"}}}}}, "limits[0].max"},
           {{{"limits", {{{"metric", "allocs"}, {"max", 1}}}}}, "limits[0].metric"},
           {{{"limits", {{{"max", 1}}}}}, "limits[0].metric"},
           {{{"limits",
              {{{"metric", "peak_page_bytes"}, {"site", {{"function", "f"}}}, {"max", 1}}}}},
            "limits[0].site"},
           {{{"limits", {{{"metric", "syscalls"}, {"max", 1}, {"baseline", {{"percent", 1}}}}}}},
            "limits[0]"},
           {{{"limits", json::array()}, {"suppressions", {{{"site", {{"function", "f"}}}}}}},
            "suppressions[0].reason"},
           {{{"limits", {{{"metric", "allocations"}, {"site", {{"location", "a.c:99999999999"}}},
                           {"max", 1}}}}},
            "limits[0].site.location"},
           {{{"limit", json::array()}}, "budget.limit"}}) {
    CommandResult r = Check({"--budget", WriteBudget(dir, c.budget)}, Runs().base);
    EXPECT_EQ(r.exit_code, 2) << c.budget;
    EXPECT_NE(r.err.find(c.field), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  std::string not_json = dir.path() + "/bad.json";
  std::ofstream(not_json) << "{ not json";
  CommandResult r = Check({"--budget", not_json}, Runs().base);
  EXPECT_EQ(r.exit_code, 2);
  // A saved report with a field of the wrong type, or of another version.
  json doc = Runs().doc;
  doc["combined"]["summary"]["allocations"] = "many";
  std::string report = dir.path() + "/report.json";
  std::ofstream(report) << doc.dump();
  r = Check({"--max-allocations", "1"}, report);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("combined.summary.allocations"), std::string::npos) << r.err;
  doc = Runs().doc;
  doc["combined"]["call_sites"][0]["stack"] = 1u << 30;
  std::ofstream(report, std::ios::trunc) << doc.dump();
  r = Check({"--max-allocations", "1"}, report);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("combined.call_sites[0].stack"), std::string::npos) << r.err;
  doc = Runs().doc;
  doc["schema_version"] = 1;
  std::ofstream(report, std::ios::trunc) << doc.dump();
  r = Check({"--max-allocations", "1"}, report);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("schema_version"), std::string::npos) << r.err;
  // Nothing to check, and a trace that is not there.
  EXPECT_EQ(Check({}, Runs().base).exit_code, 2);
  EXPECT_EQ(Check({"--max-allocations", "1"}, dir.path() + "/missing.trace").exit_code, 2);
}

TEST(Diff, ABuildThatAddsOnePageAllocatorCallSiteReportsExactlyThatSite) {
  TempDir dir;
  CommandResult r =
      RunCapture({PagewastePath(), "diff", "--format", "json", Runs().base, Runs().extra});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json d = json::parse(r.out);
  ASSERT_EQ(d["sites"].size(), 1u) << d.dump(1);
  const json& site = d["sites"][0];
  EXPECT_EQ(site["status"], "added");
  EXPECT_EQ(site["function"], "extra_pages");
  EXPECT_EQ(site["line"], SiteLine("budget.c", "extra"));
  EXPECT_EQ(site["figures"]["waste_bytes"]["new"], 10 * (4096 - 10));
  EXPECT_EQ(site["figures"]["waste_bytes"]["base"], 0);
  EXPECT_EQ(site["figures"]["syscalls"]["new"], 10);
  EXPECT_EQ(site["figures"]["page_bytes"]["new"], 10 * 4096);
  EXPECT_EQ(site["figures"]["allocations"]["change"], 0);
  EXPECT_EQ(d["totals"]["waste_bytes"]["change"], 40860);
  EXPECT_EQ(d["totals"]["syscalls"]["change"], 10);
  EXPECT_EQ(d["totals"]["allocations"]["change"], 0);
  // The same program against itself: nothing changed.
  CommandResult same =
      RunCapture({PagewastePath(), "diff", "--format", "json", Runs().base, Runs().base});
  EXPECT_EQ(json::parse(same.out)["sites"].size(), 0u);
  // The waste grew by 10.2%: past 5, within 20.
  EXPECT_EQ(
      RunCapture({PagewastePath(), "diff", "--fail-on-regression", "20", Runs().base, Runs().extra})
          .exit_code,
      0);
  CommandResult past =
      RunCapture({PagewastePath(), "diff", "--fail-on-regression", "5", Runs().base, Runs().extra});
  EXPECT_EQ(past.exit_code, 1);
  EXPECT_NE(past.out.find("FAIL: grew by more than 5%: waste_bytes"), std::string::npos)
      << past.out;
  EXPECT_NE(past.out.find("added    extra_pages"), std::string::npos) << past.out;
}

TEST(CiFormats, JunitParsesWithARealXmlParserWithOneTestCasePerLimit) {
  TempDir dir;
  std::string junit = dir.path() + "/check.xml";
  CommandResult r = Check(
      {"--max-allocations", "52", "--max-syscalls", "100000", "--junit", junit, "--budget",
       WriteBudget(
           dir, {{"limits",
                  {{{"metric", "leaked_bytes"}, {"name", "leaks <&> \"quotes\""}, {"max", 0}}}}})},
      Runs().base);
  EXPECT_EQ(r.exit_code, 1);
  CommandResult lint = RunCapture({"xmllint", "--noout", junit});
  EXPECT_EQ(lint.exit_code, 0) << lint.err;
  CommandResult count = RunCapture({"xmllint", "--xpath", "count(//testcase)", junit});
  EXPECT_EQ(count.out, "3\n");
  CommandResult failures = RunCapture({"xmllint", "--xpath", "count(//testcase[failure])", junit});
  EXPECT_EQ(failures.out, "2\n");
  CommandResult name = RunCapture({"xmllint", "--xpath", "string(//testcase[1]/@name)", junit});
  EXPECT_EQ(name.out, "leaks <&> \"quotes\"\n");
  std::string diff_junit = dir.path() + "/diff.xml";
  RunCapture({PagewastePath(), "diff", "--fail-on-regression", "5", "--junit", diff_junit,
              Runs().base, Runs().extra});
  EXPECT_EQ(RunCapture({"xmllint", "--noout", diff_junit}).exit_code, 0);
  EXPECT_EQ(RunCapture({"xmllint", "--xpath", "count(//testcase[failure])", diff_junit}).out,
            "1\n");
}

// The properties listed in docs/ci.md: those SARIF 2.1.0 requires, and
// those GitHub code scanning reads.
void ExpectSarif(const json& sarif, size_t results) {
  EXPECT_EQ(sarif["version"], "2.1.0");
  EXPECT_TRUE(sarif["$schema"].is_string());
  ASSERT_EQ(sarif["runs"].size(), 1u);
  const json& run = sarif["runs"][0];
  const json& driver = run["tool"]["driver"];
  EXPECT_EQ(driver["name"], "pagewaste");
  EXPECT_TRUE(driver["version"].is_string());
  std::set<std::string> rule_ids;
  for (const json& rule : driver["rules"]) {
    EXPECT_TRUE(rule_ids.insert(rule["id"].get<std::string>()).second);
    EXPECT_TRUE(rule["shortDescription"]["text"].is_string());
    EXPECT_TRUE(rule["fullDescription"]["text"].is_string());
    EXPECT_TRUE(rule["help"]["text"].is_string());
    EXPECT_TRUE(rule["defaultConfiguration"]["level"].is_string());
    EXPECT_TRUE(rule["properties"]["tags"].is_array());
  }
  ASSERT_EQ(run["results"].size(), results) << sarif.dump(1);
  std::set<std::string> fingerprints;
  for (const json& result : run["results"]) {
    EXPECT_EQ(rule_ids.count(result["ruleId"].get<std::string>()), 1u);
    EXPECT_EQ(driver["rules"][result["ruleIndex"].get<size_t>()]["id"], result["ruleId"]);
    EXPECT_TRUE(result["message"]["text"].is_string());
    EXPECT_EQ(result["level"], "error");
    ASSERT_EQ(result["locations"].size(), 1u);
    const json& physical = result["locations"][0]["physicalLocation"];
    EXPECT_TRUE(physical["artifactLocation"]["uri"].is_string());
    EXPECT_GE(physical["region"]["startLine"].get<int>(), 1);
    ASSERT_TRUE(result["partialFingerprints"].is_object());
    EXPECT_TRUE(fingerprints.insert(result["partialFingerprints"].dump()).second);
  }
}

TEST(CiFormats, SarifHasEveryPropertyTheSpecificationAndCodeScanningRequire) {
  TempDir dir;
  std::string sarif = dir.path() + "/check.sarif";
  // Two sites make up the syscalls past 150: Map's 100 mmap and
  // page_objects' 100 munmap (and heap_objects' few brk).
  CommandResult r = Check({"--max-syscalls", "150", "--sarif", sarif, "--source-root",
                           std::string(PAGEWASTE_TEST_SOURCES)},
                          Runs().base);
  EXPECT_EQ(r.exit_code, 1);
  json log = json::parse(ReadText(sarif));
  size_t offending = 0;
  for (const json& site : Runs().doc["combined"]["call_sites"])
    if (site["syscalls"]["total"].get<uint64_t>() > 0) ++offending;
  ExpectSarif(log, offending);
  // Located at the source line, relative to the source root.
  const json& first = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"];
  EXPECT_EQ(first["artifactLocation"]["uri"], "budget.c");
  EXPECT_EQ(first["region"]["startLine"], SiteLine("budget.c", "map"));  // Map's mmap
  std::string diff_sarif = dir.path() + "/diff.sarif";
  RunCapture({PagewastePath(), "diff", "--sarif", diff_sarif, Runs().base, Runs().extra});
  ExpectSarif(json::parse(ReadText(diff_sarif)), 1);
}

TEST(CiFormats, GithubAnnotationsFollowTheWorkflowCommandFormat) {
  TempDir dir;
  std::string summary = dir.path() + "/summary.md";
  std::ofstream(summary) << "earlier step\n";
  setenv("GITHUB_STEP_SUMMARY", summary.c_str(), 1);
  // A limit's name with the characters the format escapes.
  std::string budget = WriteBudget(
      dir, {{"limits",
             {{{"metric", "page_waste_bytes"}, {"name", "waste 50%, a:b\nc"}, {"max", "1K"}}}}});
  CommandResult r =
      Check({"--budget", budget, "--github", "--source-root", std::string(PAGEWASTE_TEST_SOURCES)},
            Runs().base);
  unsetenv("GITHUB_STEP_SUMMARY");
  EXPECT_EQ(r.exit_code, 1);
  // ::error file=F,line=L,title=T::MESSAGE, with %, CR, LF escaped in the
  // message and also : and , in the properties.
  std::regex command(
      R"(^::(error|warning|notice)( file=[^,:]+,line=[0-9]+,| )title=[^:,]*::[^\r\n]*$)");
  int annotations = 0;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("::", 0) != 0) continue;
    ++annotations;
    EXPECT_TRUE(std::regex_match(line, command)) << line;
  }
  EXPECT_EQ(annotations, 1) << r.out;
  EXPECT_NE(
      r.out.find("::error file=budget.c,line=" + std::to_string(SiteLine("budget.c", "map")) +
                 ",title=pagewaste%3A waste 50%25%2C a%3Ab%0Ac::waste 50%25, a:b%0Ac: 399,600 B"),
      std::string::npos)
      << r.out;
  std::string md = ReadText(summary);
  EXPECT_EQ(md.rfind("earlier step\n### pagewaste check: failed", 0), 0u) << md;
  EXPECT_NE(md.find("| 399,600 B | 1,024 B |"), std::string::npos) << md;
}

TEST(RunCheck, ChecksTheTracesOfTheRunAndTheProgramsFailureWins) {
  TempDir dir;
  std::string budget =
      WriteBudget(dir, {{"limits", {{{"metric", "page_waste_bytes"}, {"max", 0}}}}});
  CommandResult r = RunCapture({PagewastePath(), "run", "-o", dir.path() + "/%p.trace", "--check",
                                budget, "--", ProgramPath("budget")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("pagewaste check: FAIL: 1 of 1 limit exceeded"), std::string::npos)
      << r.err;
  std::string loose =
      WriteBudget(dir, {{"limits", {{{"metric", "page_waste_bytes"}, {"max", "1M"}}}}});
  r = RunCapture({PagewastePath(), "run", "-o", dir.path() + "/%p.trace", "--check", loose, "--",
                  ProgramPath("budget")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // The program's own status wins, and the check is still printed.
  r = RunCapture({PagewastePath(), "run", "-o", dir.path() + "/%p.trace", "--check", budget, "--",
                  "sh", "-c", "exit 3"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("pagewaste check: "), std::string::npos) << r.err;
}

}  // namespace
}  // namespace pagewaste::e2e
