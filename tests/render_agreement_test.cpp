// The renderers only format: every figure the text report prints for a call
// site or the summary is the one the JSON report carries for the same trace
// (both take it from the report model, which computes each derived figure
// once: the waste a site is ranked by, syscalls per call, the sampling
// error, percentages).
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <regex>

#include "e2e_support.h"

namespace pagewaste::e2e {
namespace {

using nlohmann::json;

std::string Printf(const char* format, double v) {
  char buf[64];
  snprintf(buf, sizeof buf, format, v);
  return buf;
}
std::string fmt_2(double v) { return Printf("%.2f", v); }
std::string fmt_3g(double v) { return Printf("%.3g", v); }

uint64_t Number(const std::string& grouped) {
  std::string digits;
  for (char c : grouped)
    if (c != ',') digits += c;
  return std::stoull(digits);
}

void ExpectTextAgreesWithJson(const std::string& trace) {
  CommandResult text = RunCapture({PagewastePath(), "report", trace});
  CommandResult js = RunCapture({PagewastePath(), "report", "--format", "json", "--top", "10", trace});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  ASSERT_EQ(js.exit_code, 0) << js.err;
  json r = ParseReport(js.out);

  std::smatch m;
  std::regex summary_waste(R"(page-rounding waste  ([\d,]+) B.*?  ([\d.]+)% of bytes in pages)");
  ASSERT_TRUE(std::regex_search(text.out, m, summary_waste)) << text.out;
  EXPECT_EQ(Number(m[1]), r["summary"]["page_waste_bytes"].get<uint64_t>());
  EXPECT_EQ(m[2].str(), fmt_2(r["summary"]["page_waste_percent"].get<double>()));

  std::regex site(
      R"(#(\d+) +([\d,]+) B[^,]*? (estimated )?waste, ([\d,]+) B[^,]* in pages, ([\d,]+) B(?: \([^)]*\))?(?: \+/- ([\d,]+) B(?: \([^)]*\))?)? requested; syscalls ([\d,]+)(?:[^(\n]*\(([^ ]+) per call)?)");
  int checked = 0;
  for (auto it = std::sregex_iterator(text.out.begin(), text.out.end(), site);
       it != std::sregex_iterator() && checked < static_cast<int>(r["call_sites"].size()); ++it) {
    const std::smatch& s = *it;
    size_t rank = std::stoul(s[1]);
    if (rank != static_cast<size_t>(checked) + 1) break;  // the next section's ranks
    const json& j = r["call_sites"][rank - 1];
    EXPECT_EQ(Number(s[2]), j["waste_bytes"].get<uint64_t>()) << s.str();
    EXPECT_EQ(s[3].matched, j["waste_estimated"].get<bool>()) << s.str();
    EXPECT_EQ(Number(s[4]), j["page_bytes"].get<uint64_t>()) << s.str();
    EXPECT_EQ(Number(s[5]), j["requested_bytes"].get<uint64_t>()) << s.str();
    EXPECT_EQ(s[6].matched ? Number(s[6]) : 0u, j["sampling_error_bytes"].get<uint64_t>())
        << s.str();
    EXPECT_EQ(Number(s[7]), j["syscalls"]["total"].get<uint64_t>()) << s.str();
    if (s[8].matched)
      EXPECT_EQ(s[8].str(), fmt_3g(j["syscalls_per_call"].get<double>())) << s.str();
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(r["call_sites"].size())) << text.out;
}

TEST(RenderAgreement, TextAndJsonGiveTheSameFiguresForEachSite) {
  struct Case {
    std::vector<std::string> command, run_options;
  };
  for (const Case& c : {Case{{"mmap_two_bytes"}, {}}, Case{{"large_malloc"}, {}},
                        Case{{"sampled"}, {"--sample", "4K"}}, Case{{"peak"}, {}}}) {
    TempDir dir;
    Profile p = ProfileProgram(dir, c.command, c.run_options);
    ASSERT_EQ(p.traces.size(), 1u) << c.command[0] << ": " << p.run.err;
    SCOPED_TRACE(c.command[0]);
    ExpectTextAgreesWithJson(p.traces[0]);
  }
}

// check's text, Markdown, JUnit and SARIF are renderers too: each states
// the figure the JSON report holds, and each site's share of it.
TEST(RenderAgreement, CheckOutputsGiveTheJsonFigures) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"budget"});
  ASSERT_EQ(p.traces.size(), 1u);
  json doc = ParseDocument(RunCapture({PagewastePath(), "report", "--format", "json", p.traces[0]}).out);
  const json& summary = doc["combined"]["summary"];
  std::string md = dir.path() + "/check.md", junit = dir.path() + "/check.xml",
              sarif = dir.path() + "/check.sarif";
  CommandResult r = RunCapture({PagewastePath(), "check", "--max-page-waste", "1", "--max-syscalls",
                                "1", "--markdown", md, "--junit", junit, "--sarif", sarif,
                                p.traces[0]});
  ASSERT_EQ(r.exit_code, 1) << r.err;
  std::string waste = GroupDigits(summary["page_waste_bytes"].get<uint64_t>()) + " B";
  std::string syscalls = GroupDigits(summary["syscalls"]["total"].get<uint64_t>());
  EXPECT_NE(r.out.find("page_waste_bytes (whole run): " + waste + " > limit 1 B"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("syscalls (whole run): " + syscalls + " > limit 1"), std::string::npos) << r.out;
  EXPECT_NE(ReadFile(md).find("| " + waste + " | 1 B |"), std::string::npos) << ReadFile(md);
  EXPECT_NE(ReadFile(md).find("| " + syscalls + " | 1 |"), std::string::npos) << ReadFile(md);
  EXPECT_NE(ReadFile(junit).find("page_waste_bytes (whole run): " + waste + " &gt; limit 1 B"),
            std::string::npos);
  // Each site's share, in SARIF, is the site's figure in the JSON.
  json log = json::parse(ReadFile(sarif));
  std::map<std::string, uint64_t> waste_by_key;
  for (const json& site : doc["combined"]["call_sites"])
    waste_by_key[site["key"].get<std::string>()] = site["page_waste_bytes"].get<uint64_t>();
  int checked = 0;
  for (const json& result : log["runs"][0]["results"]) {
    if (result["ruleId"] != "pagewaste/page_waste_bytes") continue;
    std::string fingerprint = result["partialFingerprints"]["pagewasteSite/v1"];
    std::string key = fingerprint.substr(0, fingerprint.find('/'));
    ASSERT_TRUE(waste_by_key.count(key)) << fingerprint;
    EXPECT_NE(result["message"]["text"].get<std::string>().find(
                  ": " + GroupDigits(waste_by_key[key]) + " B."),
              std::string::npos)
        << result["message"]["text"];
    ++checked;
  }
  EXPECT_EQ(checked, 1);  // only the pages site wastes pages
}

}  // namespace
}  // namespace pagewaste::e2e
