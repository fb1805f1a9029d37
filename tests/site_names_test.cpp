// Call sites are named by the program's own code: the first frame outside
// the standard libraries and runtimes on the way to the system call, and
// where two sites share it, the caller that tells them apart. Each test
// profiles a real program and reads the name in every output that gives
// one.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "e2e_support.h"

namespace pagewaste::e2e {
namespace {

using nlohmann::json;

// The tests' source root: tests/, so that sources show as programs/x.c.
std::string SourceRoot() {
  std::string sources = PAGEWASTE_TEST_SOURCES;
  return sources.substr(0, sources.rfind('/'));
}

std::string Read(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void Write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t end; (end = text.find('\n', start)) != std::string::npos; start = end + 1)
    lines.push_back(text.substr(start, end - start));
  return lines;
}

// The lines of the first site of the text report's top list.
std::vector<std::string> FirstSite(const std::string& text) {
  std::vector<std::string> lines = Lines(text), out;
  auto it = std::find(lines.begin(), lines.end(), "Top call sites by page-rounding waste");
  if (it == lines.end() || ++it == lines.end()) return out;
  out.push_back(*it);
  for (++it; it != lines.end() && it->rfind("#", 0) != 0 && !it->empty(); ++it) out.push_back(*it);
  return out;
}

std::vector<std::string> Labels(const json& sites) {
  std::vector<std::string> out;
  for (const json& s : sites) out.push_back(s["label"].get<std::string>());
  return out;
}

class ZigSite : public ::testing::TestWithParam<const char*> {};

// The seed's case: 1,000 page_allocator.alloc calls. The site is the
// program's line that called it, not Zig's lib/std; every CI output points
// there, by a path relative to the source root, and none names a file in
// the Zig installation.
TEST_P(ZigSite, IsTheProgramsOwnLineInTextAndEveryCiOutput) {
  std::string program = ProgramPath(GetParam());
  if (program == GetParam()) GTEST_SKIP() << "no zig at build time (make test fetches it)";
  std::string zig_dir = PAGEWASTE_ZIG_PATH;
  zig_dir = zig_dir.substr(0, zig_dir.rfind('/'));
  TempDir dir;
  Profile p = ProfileProgram(dir, {GetParam()});
  ASSERT_EQ(p.traces.size(), 1u) << p.run.err;
  int alloc_line = SiteLine("page_alloc.zig", "alloc");
  std::string own_line = "page_alloc.main (programs/page_alloc.zig:" + std::to_string(alloc_line) + ")";

  CommandResult text =
      RunCapture({PagewastePath(), "report", "--source-root", SourceRoot(), p.traces[0]});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  std::vector<std::string> site = FirstSite(text.out);
  ASSERT_GE(site.size(), 2u) << text.out;
  // The heading, then the site's name; its frames show the line too, with
  // the library frames before it folded to three lines at most.
  EXPECT_EQ(site[1], "     at " + own_line) << text.out;
  auto frame = std::find(site.begin(), site.end(), "       " + own_line);
  ASSERT_NE(frame, site.end()) << text.out;
  size_t first_frame = 2;
  while (first_frame < site.size() && site[first_frame].rfind("       ", 0) != 0) ++first_frame;
  EXPECT_LE(static_cast<size_t>(frame - site.begin()), first_frame + 3) << text.out;
  EXPECT_EQ(text.out.find(zig_dir), std::string::npos) << text.out;

  std::string budget = dir.path() + "/budget.json", sarif = dir.path() + "/out.sarif",
              junit = dir.path() + "/out.xml", markdown = dir.path() + "/out.md";
  Write(budget, R"({"limits": [{"metric": "syscalls.mmap", "site": {"location": "page_alloc.zig:)" +
                    std::to_string(alloc_line) + R"("}, "max": 999}]})");
  CommandResult check = RunCapture({PagewastePath(), "check", "--budget", budget, "--source-root",
                                    SourceRoot(), "--sarif", sarif, "--junit", junit, "--markdown",
                                    markdown, "--github", p.traces[0]});
  ASSERT_EQ(check.exit_code, 1) << check.out << check.err;
  json log = json::parse(Read(sarif));
  const json& results = log["runs"][0]["results"];
  ASSERT_EQ(results.size(), 1u) << log.dump(2);
  const json& where = results[0]["locations"][0]["physicalLocation"];
  EXPECT_EQ(where["artifactLocation"]["uri"], "programs/page_alloc.zig");
  EXPECT_EQ(where["region"]["startLine"], alloc_line);
  EXPECT_NE(check.out.find("::error file=programs/page_alloc.zig,line=" +
                           std::to_string(alloc_line) + ","),
            std::string::npos)
      << check.out;
  EXPECT_NE(check.out.find(own_line), std::string::npos) << check.out;
  for (const std::string& output : {check.out, Read(sarif), Read(junit), Read(markdown)}) {
    EXPECT_EQ(output.find(zig_dir), std::string::npos) << output;
    EXPECT_EQ(output.find("os.linux.x86_64.syscall6"), std::string::npos) << output;
  }
}

INSTANTIATE_TEST_SUITE_P(StaticAndLibc, ZigSite,
                         ::testing::Values("page_alloc_zig", "page_alloc_zig_libc"));

// Go's runtime maps the heap for make([]byte, 8 MiB): 40 mappings of 8 MiB
// made by runtime.sysMap, on the runtime's own stack. The site is
// makeBuffers' line, not runtime.*.
// A Go program built with cgo is dynamically linked, so run preloads the
// shim into it; its runtime's own system calls pass the shim by, and run
// says so rather than let its counts pass for complete.
TEST(GoPrograms, ACgoBuildTracedByTheShimIsNamedInRunsSummary) {
  std::string program = ProgramPath("go_cgo");
  if (program == "go_cgo") GTEST_SKIP() << "no go at build time (apt-get install golang-go)";
  TempDir dir;
  Profile p = ProfileProgram(dir, {"go_cgo"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  EXPECT_EQ(p.run.out, "40\n");
  const nlohmann::json& r = OnlyReport(p);
  EXPECT_EQ(r["process"]["backend"], "preload");
  std::string line = "pagewaste: go_cgo (pid " + std::to_string(r["process"]["pid"].get<int>()) +
                     ") is a Go program: its runtime makes memory system calls of its own, past "
                     "the C library, which the preload shim does not see; --backend ptrace "
                     "records every one\n";
  EXPECT_NE(p.run.err.find(line), std::string::npos) << p.run.err;
}

TEST(GoSite, IsTheProgramsFunctionNotTheRuntimes) {
  std::string program = ProgramPath("go_alloc");
  if (program == "go_alloc") GTEST_SKIP() << "no go at build time (apt-get install golang-go)";
  TempDir dir;
  Profile p = ProfileProgram(dir, {"go_alloc"});
  ASSERT_EQ(p.run.exit_code, 0) << p.run.err;
  CommandResult js = RunCapture({PagewastePath(), "report", "--format", "json", "--source-root",
                                 SourceRoot(), p.traces[0]});
  ASSERT_EQ(js.exit_code, 0) << js.err;
  json r = ParseReport(js.out);
  std::string make_line =
      "main.makeBuffers (programs/go_alloc/main.go:" + std::to_string(SiteLine("go_alloc/main.go", "make")) + ")";
  const json* largest = nullptr;
  for (const json& site : r["call_sites"]) {
    if (!largest || site["requested_bytes"] > (*largest)["requested_bytes"]) largest = &site;
    bool through_main = false;
    for (const json& f : site["frames"]) through_main |= f["function"] == "main.makeBuffers";
    if (through_main)
      EXPECT_EQ(site["label"].get<std::string>().rfind("main.makeBuffers (", 0), 0u)
          << site["label"];
  }
  ASSERT_NE(largest, nullptr);
  EXPECT_EQ((*largest)["mappings"], 40u);
  EXPECT_EQ((*largest)["requested_bytes"], 40u * (8u << 20));
  EXPECT_EQ((*largest)["label"].get<std::string>().rfind(make_line, 0), 0u) << (*largest)["label"];
  // Its first frames are the runtime's, marked so; makeBuffers' is not.
  EXPECT_TRUE((*largest)["frames"][0]["library"].get<bool>());
  for (const json& f : (*largest)["frames"])
    if (f["function"] == "main.makeBuffers") EXPECT_FALSE(f["library"].get<bool>());
}

// One page allocator, two callers: two sites, two labels, in every output
// that names a site; a diff that adds the second caller names it.
TEST(TwoCallers, HaveTwoLabelsEverywhereAndADiffNamesTheNewCaller) {
  TempDir dir, other;
  Profile one = ProfileProgram(other, {"objs"});
  Profile two = ProfileProgram(dir, {"objs_tag"});
  ASSERT_EQ(one.traces.size(), 1u);
  ASSERT_EQ(two.traces.size(), 1u);
  std::string obj = "page_alloc ← make_obj (programs/objs.c:" +
                    std::to_string(SiteLine("objs.c", "make_obj")) + ")";
  std::string tag = "page_alloc ← make_tag (programs/objs.c:" +
                    std::to_string(SiteLine("objs.c", "make_tag")) + ")";
  std::string alone =
      "page_alloc (programs/objs.c:" + std::to_string(SiteLine("objs.c", "page_alloc")) + ")";
  std::vector<std::string> root = {"--source-root", SourceRoot()};

  auto report = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {PagewastePath(), "report"};
    argv.insert(argv.end(), root.begin(), root.end());
    argv.insert(argv.end(), args.begin(), args.end());
    CommandResult r = RunCapture(argv);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  };
  // Alone, the allocator's line names the site.
  json base = ParseReport(report({"--format", "json", one.traces[0]}));
  ASSERT_EQ(base["call_sites"].size(), 1u);
  EXPECT_EQ(base["call_sites"][0]["label"], alone);

  json doc = ParseReport(report({"--format", "json", two.traces[0]}));
  ASSERT_EQ(doc["call_sites"].size(), 2u);
  EXPECT_EQ(Labels(doc["call_sites"]), (std::vector<std::string>{obj, tag}));
  EXPECT_EQ(doc["call_sites"][0]["page_waste_bytes"], 407200u);
  EXPECT_EQ(doc["call_sites"][1]["page_waste_bytes"], 40880u);
  EXPECT_EQ(Labels(doc["kernel_sites"]), (std::vector<std::string>{obj, tag}));
  EXPECT_EQ(Labels(doc["leak_sites"]), (std::vector<std::string>{obj, tag}));

  std::string text = report({two.traces[0]});
  EXPECT_NE(text.find("     at " + obj + "\n"), std::string::npos) << text;
  // 110 live mappings are far from vm.max_map_count (65,530 by default):
  // no word about it.
  EXPECT_EQ(text.find("vm.max_map_count"), std::string::npos) << text;
  EXPECT_NE(text.find("     at " + tag + "\n"), std::string::npos) << text;

  std::string html = dir.path() + "/r.html";
  report({"--format", "html", "-o", html, two.traces[0]});
  EXPECT_NE(Read(html).find("\"where\":\"" + obj + "\""), std::string::npos);
  EXPECT_NE(Read(html).find("\"where\":\"" + tag + "\""), std::string::npos);

  // pprof: each sample carries its site's label (go tool pprof -tags).
  std::string profile = dir.path() + "/r.pb.gz";
  report({"--format", "pprof", "-o", profile, two.traces[0]});
  CommandResult tags = RunCapture({"go", "tool", "pprof", "-tags", "-sample_index=page_waste", profile});
  if (tags.exit_code == 0) {
    EXPECT_NE(tags.out.find("): " + obj + "\n"), std::string::npos) << tags.out;
    EXPECT_NE(tags.out.find("): " + tag + "\n"), std::string::npos) << tags.out;
  } else {
    ADD_FAILURE() << "go tool pprof: " << tags.err;
  }

  // SARIF: one finding at the allocator's line, which both callers reach,
  // naming each.
  std::string sarif = dir.path() + "/r.sarif";
  CommandResult check = RunCapture({PagewastePath(), "check", "--max-page-waste", "1",
                                    "--source-root", SourceRoot(), "--sarif", sarif, two.traces[0]});
  ASSERT_EQ(check.exit_code, 1) << check.err;
  EXPECT_NE(check.out.find(obj), std::string::npos) << check.out;
  EXPECT_NE(check.out.find(tag), std::string::npos) << check.out;
  json log = json::parse(Read(sarif));
  ASSERT_EQ(log["runs"][0]["results"].size(), 1u) << log.dump(2);
  std::string message = log["runs"][0]["results"][0]["message"]["text"];
  EXPECT_NE(message.find("2 call sites at this line: 448,080 B: " + obj + " 407,200 B; " + tag +
                         " 40,880 B"),
            std::string::npos)
      << message;

  // Marked as a library's (a budget's "code", or --library-code), the
  // allocator gives way to its callers: two lines, two findings.
  std::string budget = dir.path() + "/budget.json";
  Write(budget, R"({"code": {"library": ["page_alloc"]},
                    "limits": [{"metric": "page_waste_bytes", "max": 1}]})");
  std::string obj_line = "programs/objs.c:" + std::to_string(SiteLine("objs.c", "make_obj"));
  std::string tag_line = "programs/objs.c:" + std::to_string(SiteLine("objs.c", "make_tag"));
  check = RunCapture({PagewastePath(), "check", "--budget", budget, "--source-root", SourceRoot(),
                      "--sarif", sarif, two.traces[0]});
  ASSERT_EQ(check.exit_code, 1) << check.err;
  EXPECT_NE(check.out.find("  make_obj (" + obj_line + ")  ["), std::string::npos) << check.out;
  EXPECT_NE(check.out.find("  make_tag (" + tag_line + ")  ["), std::string::npos) << check.out;
  EXPECT_EQ(json::parse(Read(sarif))["runs"][0]["results"].size(), 2u);
  text = report({"--library-code", "page_alloc", two.traces[0]});
  EXPECT_NE(text.find("     at make_obj (" + obj_line + ")\n"), std::string::npos) << text;

  // The diff names the new caller, not the allocator both share.
  std::vector<std::string> argv = {PagewastePath(), "diff", "--format", "json"};
  argv.insert(argv.end(), root.begin(), root.end());
  argv.push_back(one.traces[0]);
  argv.push_back(two.traces[0]);
  CommandResult diff = RunCapture(argv);
  ASSERT_EQ(diff.exit_code, 0) << diff.err;
  json d = json::parse(diff.out);
  ASSERT_EQ(d["sites"].size(), 1u) << diff.out;
  EXPECT_EQ(d["sites"][0]["status"], "added");
  EXPECT_EQ(d["sites"][0]["label"], tag);
  EXPECT_EQ(d["sites"][0]["figures"]["page_bytes"]["new"], 40960u);
  argv[3] = "text";
  diff = RunCapture(argv);
  EXPECT_NE(diff.out.find("  added    " + tag + "  ["), std::string::npos) << diff.out;
}

// A site that maps pages of its own and takes heap blocks too: each of its
// sentences averages over the requests it counts (tests/programs/
// mixed_sizes.c: 10 blocks of 200,000 B mapped by glibc, 30 of 100 B from
// the heap).
TEST(MixedSite, AveragesEachKindOverItsOwnRequests) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"mixed_sizes"});
  const json& r = OnlyReport(p);
  const json* site = FindSite(r, "mixed_sizes.c", SiteLine("mixed_sizes.c", "mixed"));
  ASSERT_NE(site, nullptr);
  EXPECT_EQ((*site)["allocations"], 40u);
  EXPECT_EQ((*site)["own_mappings"], 10u);
  EXPECT_EQ((*site)["own_requested_bytes"], 10u * 200000);
  EXPECT_EQ((*site)["requested_bytes"], 10u * 200000 + 30u * 100);
  // glibc maps 200,000 B plus its 16-byte header, rounded up: 49 pages.
  EXPECT_EQ((*site)["page_bytes"], 10u * 49 * 4096);
  CommandResult text = RunCapture({PagewastePath(), "report", p.traces[0]});
  // 2,000,000 / 10 and 3,000 / 30.
  EXPECT_NE(text.out.find("     10 requests got pages of their own (0 direct mmap, 10 malloc'd "
                          "mapped chunks): 200,000 B (195.3 KiB) requested on average, "
                          "2,007,040 B (1.9 MiB) in pages\n"),
            std::string::npos)
      << text.out;
  EXPECT_NE(text.out.find("     30 allocations from shared heap pages: 100 B requested on average"),
            std::string::npos)
      << text.out;
}

// Every count a text report prints is grouped in thousands: a run of four
// or more digits stands only in a pid, a source line, an address, a
// decimal fraction or a name.
std::vector<std::string> UngroupedCounts(const std::string& text) {
  std::vector<std::string> out;
  for (const std::string& line : Lines(text)) {
    for (size_t i = 0; i < line.size();) {
      if (!isdigit(static_cast<unsigned char>(line[i]))) {
        ++i;
        continue;
      }
      size_t end = i;
      while (end < line.size() && isdigit(static_cast<unsigned char>(line[end]))) ++end;
      char before = i ? line[i - 1] : ' ';
      char after = end < line.size() ? line[end] : ' ';
      bool named = isalnum(static_cast<unsigned char>(before)) || strchr("_:./-+x@", before) ||
                   isalnum(static_cast<unsigned char>(after)) || after == '.' || after == '_' ||
                   after == '/';
      bool pid = (i >= 4 && line.compare(i - 4, 4, "pid ") == 0) ||
                 (i >= 7 && line.compare(i - 7, 7, "parent ") == 0) ||
                 (i >= 9 && line.compare(i - 9, 9, "child of ") == 0);
      // The processes table's first column.
      bool table_pid = line.find_first_not_of(' ') == i && line.compare(end, 2, "  ") == 0;
      if (end - i >= 4 && !named && !pid && !table_pid) out.push_back(line);
      i = end;
    }
  }
  return out;
}

TEST(TextReport, GroupsEveryCountInThousands) {
  TempDir dir;
  for (const char* program : {"malloc_count", "objs_tag", "mixed_sizes", "budget", "fork_exec"}) {
    SCOPED_TRACE(program);
    Profile p = ProfileProgram(dir, {program});
    ASSERT_FALSE(p.traces.empty());
    std::vector<std::string> argv = {PagewastePath(), "report"};
    argv.insert(argv.end(), p.traces.begin(), p.traces.end());
    CommandResult text = RunCapture(argv);
    ASSERT_EQ(text.exit_code, 0) << text.err;
    // A large report: thousands of events.
    EXPECT_NE(text.out.find(" events"), std::string::npos);
    EXPECT_EQ(UngroupedCounts(text.out), std::vector<std::string>{}) << text.out;
  }
  // The scan catches what it is for.
  EXPECT_EQ(UngroupedCounts("  these 1000 requests\n").size(), 1u);
  EXPECT_EQ(UngroupedCounts("  pid 12345 (parent 12344), at x.c:1234, 0.1234 s\n").size(), 0u);
}

}  // namespace
}  // namespace pagewaste::e2e
