// The CI side of pagewaste (docs/ci.md): the compact JSON, `check` with its
// limits, budgets and baselines, `diff`, and the formats CI systems read.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <regex>
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
      bool identity = key == "pid" || key == "ppid" || key == "tid" || key == "path" ||
                      key == "file_bytes";
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
