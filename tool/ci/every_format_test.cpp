// Every output format from memory: one report, written as a trace in the
// test and replayed, rendered in every format pagewaste writes (text, JSON,
// folded stacks, pprof, HTML; check's Markdown, JUnit, SARIF and
// annotations), each read back: every one carries the same sites and
// totals.
#include "ci_formats.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "check.h"
#include "memory_trace.h"
#include "profile.pb.h"
#include "render/render.h"

namespace pagewaste {
namespace {

using memory_trace::TraceBuilder;
using nlohmann::json;

constexpr uint64_t kBase = 0x7f0000000000;

// 1000 two-byte pages mapped at one line (4,094,000 B of page-rounding
// waste, 1,000 mmap calls); 400 of them unmapped and 5 blocks of 100 B
// malloc'd at another (400 munmap calls, no waste).
Report TwoSites() {
  TraceBuilder t;
  for (uint64_t i = 0; i < 1000; ++i) t.Mmap(kBase + i * 4096, 2);
  for (uint64_t i = 0; i < 5; ++i) t.Malloc(0x10000 + i * 128, 100);
  for (uint64_t i = 0; i < 400; ++i) t.Munmap(kBase + i * 4096, 2);
  return t.Replay();
}

constexpr uint64_t kWaste = 4'094'000;
constexpr uint64_t kMapSyscalls = 1000, kFreeSyscalls = 400;

// Each site's figures, by what every format can name a site by: its waste
// and its system calls.
using SiteFigures = std::multiset<std::pair<uint64_t, uint64_t>>;
const SiteFigures kSites = {{kWaste, kMapSyscalls}, {0, kFreeSyscalls}};

uint64_t Number(std::string grouped) {
  std::erase(grouped, ',');
  return std::stoull(grouped);
}

std::string Gunzip(const std::string& gz) {
  z_stream z = {};
  EXPECT_EQ(inflateInit2(&z, 16 + MAX_WBITS), Z_OK);
  std::string out(1 << 20, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = static_cast<uInt>(gz.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(inflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  inflateEnd(&z);
  return out;
}

class EveryFormat : public ::testing::Test {
 protected:
  void SetUp() override {
    reports_.push_back(TwoSites());
    json_ = json::parse(RenderJson(reports_, RenderOptions{}));
    const json& combined = json_["combined"];
    ASSERT_EQ(combined["summary"]["page_waste_bytes"], kWaste);
    ASSERT_EQ(combined["summary"]["syscalls"]["total"], kMapSyscalls + kFreeSyscalls);
    ASSERT_EQ(combined["call_sites"].size(), 2u) << combined.dump(1);
    for (const json& site : combined["call_sites"]) {
      uint64_t waste = site["page_waste_bytes"];
      json_sites_.insert({waste, site["syscalls"]["total"].get<uint64_t>()});
      labels_[waste] = site["label"];
    }
    ASSERT_EQ(json_sites_, kSites);
  }

  std::vector<Report> reports_;
  json json_;
  SiteFigures json_sites_;
  std::map<uint64_t, std::string> labels_;  // by waste
};

TEST_F(EveryFormat, TextGivesTheJsonSitesAndTotals) {
  std::string text = RenderText(reports_, RenderOptions{});
  EXPECT_NE(text.find("  page-rounding waste  4,094,000 B (3.9 MiB)  99.95% of bytes in pages\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("  syscalls             1,400: mmap 1,000, munmap 400"), std::string::npos);
  std::regex site(
      R"(#\d +([\d,]+) B[^\n]* waste, [^\n]*; syscalls ([\d,]+)[^\n]*\n     at ([^\n]*))");
  SiteFigures sites;
  // The first list only: by page-rounding waste.
  std::string first = text.substr(0, text.find("Call sites that enter the kernel"));
  for (auto it = std::sregex_iterator(first.begin(), first.end(), site);
       it != std::sregex_iterator(); ++it) {
    uint64_t waste = Number((*it)[1]);
    sites.insert({waste, Number((*it)[2])});
    EXPECT_EQ((*it)[3].str(), labels_[waste]);
  }
  EXPECT_EQ(sites, kSites) << text;
}

TEST_F(EveryFormat, FoldedStacksSumToTheJsonTotals) {
  for (const auto& [metric, total, values] :
       {std::tuple{"page_waste_bytes", kWaste, std::multiset<uint64_t>{kWaste}},
        std::tuple{"syscalls", kMapSyscalls + kFreeSyscalls,
                   std::multiset<uint64_t>{kMapSyscalls, kFreeSyscalls}}}) {
    auto writer = FoldedWriter(metric);
    std::string folded = Render(writer.get(), reports_);
    std::multiset<uint64_t> lines;
    uint64_t sum = 0;
    for (size_t at = 0, end; (end = folded.find('\n', at)) != std::string::npos; at = end + 1) {
      std::string line = folded.substr(at, end - at);
      uint64_t value = std::stoull(line.substr(line.rfind(' ') + 1));
      lines.insert(value);
      sum += value;
    }
    EXPECT_EQ(sum, total) << metric << "\n" << folded;
    EXPECT_EQ(lines, values) << metric << "\n" << folded;  // a site's value on a line of its own
  }
}

TEST_F(EveryFormat, PprofSamplesAreTheJsonSites) {
  auto writer = PprofWriter("page_waste_bytes");
  perftools::profiles::Profile profile;
  ASSERT_TRUE(profile.ParseFromString(Gunzip(Render(writer.get(), reports_))));
  int waste = -1, syscalls = -1;
  for (int i = 0; i < profile.sample_type_size(); ++i) {
    const std::string& type = profile.string_table(profile.sample_type(i).type());
    if (type == "page_waste") waste = i;
    if (type == "syscalls") syscalls = i;
  }
  ASSERT_GE(waste, 0);
  ASSERT_GE(syscalls, 0);
  EXPECT_EQ(profile.string_table(profile.default_sample_type()), "page_waste");
  SiteFigures sites;
  for (const auto& sample : profile.sample())
    sites.insert({static_cast<uint64_t>(sample.value(waste)),
                  static_cast<uint64_t>(sample.value(syscalls))});
  EXPECT_EQ(sites, kSites);
}

TEST_F(EveryFormat, HtmlDataIsTheJsonSitesAndTotals) {
  auto writer = HtmlWriter();
  std::string html = Render(writer.get(), reports_);
  const std::string open = "<script id=\"data\" type=\"application/json\">";
  size_t at = html.find(open);
  ASSERT_NE(at, std::string::npos);
  at += open.size();
  json data = json::parse(html.substr(at, html.find("</script>", at) - at));
  EXPECT_EQ(data["cards"][0]["label"], "page-rounding waste");
  EXPECT_EQ(data["cards"][0]["value"], kWaste);
  EXPECT_EQ(data["cards"][4]["label"], "system calls");
  EXPECT_EQ(data["cards"][4]["value"], kMapSyscalls + kFreeSyscalls);
  SiteFigures sites;
  for (const json& site : data["sites"]) {
    uint64_t waste = site["waste"];
    sites.insert({waste, site["syscalls"].get<uint64_t>()});
    EXPECT_EQ(site["where"], labels_[waste]);
  }
  EXPECT_EQ(sites, kSites);
  // The flame graph's root holds every site: its page waste and syscalls.
  const json& root = data["flame"]["root"];
  EXPECT_EQ(root[1], kWaste);
  EXPECT_EQ(root[4], kMapSyscalls + kFreeSyscalls);
}

// check over the same report (the JSON document it reads), with limits of
// 1 on the waste and the syscalls: its figures in Markdown, JUnit, SARIF
// and annotations are the report's, and so are each site's.
TEST_F(EveryFormat, CheckOutputsGiveTheJsonSitesAndTotals) {
  ReportDocument doc;
  std::string err;
  ASSERT_TRUE(doc.Parse(json_.dump(), "memory.json", &err)) << err;
  Budget budget;
  ASSERT_TRUE(ParseBudget(R"({"limits": [{"metric": "page_waste_bytes", "max": 1},
                                         {"metric": "syscalls", "max": 1}]})",
                          &budget, &err))
      << err;
  CheckResult check;
  ASSERT_TRUE(EvaluateBudget(doc, nullptr, budget, &check, &err)) << err;
  ASSERT_EQ(check.limits.size(), 2u);
  EXPECT_EQ(check.limits[0].value, kWaste);
  EXPECT_EQ(check.limits[1].value, kMapSyscalls + kFreeSyscalls);
  ASSERT_EQ(check.limits[0].sites.size(), 1u);  // the one site that wastes pages
  EXPECT_EQ(check.limits[0].sites[0].value, kWaste);
  std::multiset<uint64_t> syscall_sites;
  for (const SiteFigure& site : check.limits[1].sites) syscall_sites.insert(site.value);
  EXPECT_EQ(syscall_sites, (std::multiset<uint64_t>{kMapSyscalls, kFreeSyscalls}));

  std::string markdown = CheckMarkdown(check);
  EXPECT_NE(markdown.find("| 4,094,000 B | 1 B |"), std::string::npos) << markdown;
  EXPECT_NE(markdown.find("| 1,400 | 1 |"), std::string::npos) << markdown;
  std::string junit = CheckJunit(check);
  EXPECT_NE(junit.find("page_waste_bytes (whole run): 4,094,000 B &gt; limit 1 B"),
            std::string::npos)
      << junit;
  EXPECT_NE(junit.find("syscalls (whole run): 1,400 &gt; limit 1"), std::string::npos) << junit;
  std::string github = CheckGithub(check);
  EXPECT_NE(github.find("page_waste_bytes (whole run): 4,094,000 B > limit 1 B"),
            std::string::npos)
      << github;
  // SARIF: results by source line, each naming its sites with their
  // figures (these sites have no source line: one result holds both).
  json sarif = json::parse(CheckSarif(check));
  std::map<std::string, std::string> results;  // by rule
  for (const json& result : sarif["runs"][0]["results"])
    results[result["ruleId"]] += result["message"]["text"].get<std::string>();
  EXPECT_EQ(results["pagewaste/page_waste_bytes"],
            "page_waste_bytes (whole run): 4,094,000 B > limit 1 B. This call site, " +
                labels_[kWaste] + ": 4,094,000 B.");
  EXPECT_EQ(results["pagewaste/syscalls"],
            "syscalls (whole run): 1,400 > limit 1. 2 call sites at this line: 1,400: " +
                labels_[kWaste] + " 1,000; " + labels_[0] + " 400.");
  EXPECT_NE(labels_[kWaste], labels_[0]);
}

}  // namespace
}  // namespace pagewaste
