// The HTML report, opened in a real browser: Debian's Chromium, headless
// (installed by make test). The page must work offline: no console errors,
// nothing fetched (its Content-Security-Policy allows nothing but itself, and
// would log any attempt as a console error), the flame graph naming the
// program's functions, and search highlighting them. A screenshot is left in
// the build folder.
#include <gtest/gtest.h>

#include <regex>
#include <sstream>

#include "e2e_support.h"

namespace pagewaste::e2e {
namespace {

// Chromium's flags for a headless run as root in a container; its console
// messages go to stderr as "INFO:CONSOLE(...)".
std::vector<std::string> Chromium(const std::vector<std::string>& more) {
  // /dev/shm is small in containers: Chromium keeps its shared memory in /tmp.
  std::vector<std::string> argv = {
      "chromium",         "--headless=new",  "--no-sandbox", "--disable-gpu",
      "--disable-background-networking",     "--disable-dev-shm-usage",
      "--enable-logging=stderr",             "--v=0",        "--virtual-time-budget=5000"};
  argv.insert(argv.end(), more.begin(), more.end());
  return argv;
}

std::string HtmlOf(const TempDir& dir, const std::vector<std::string>& traces) {
  std::string html = dir.path() + "/report.html";
  std::vector<std::string> argv = {PagewastePath(), "report", "--format", "html", "-o", html};
  argv.insert(argv.end(), traces.begin(), traces.end());
  CommandResult r = RunCapture(argv);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return html;
}

// The flame graph's frames in the page as the browser built it: their
// names, and those the search marked.
struct Frames {
  std::vector<std::string> names, matched;
  std::string console;  // console messages, if any
};

Frames Open(const std::string& url) {
  CommandResult r = RunCapture(Chromium({"--dump-dom", url}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  Frames f;
  std::regex frame(R"re(<div class="fn( match)?( dim)?"[^>]*>([^<]*)</div>)re");
  for (auto it = std::sregex_iterator(r.out.begin(), r.out.end(), frame);
       it != std::sregex_iterator(); ++it) {
    f.names.push_back((*it)[3]);
    if ((*it)[1].matched) f.matched.push_back((*it)[3]);
  }
  std::istringstream lines(r.err);
  for (std::string line; std::getline(lines, line);)
    if (line.find(":CONSOLE") != std::string::npos) f.console += line + "\n";
  return f;
}

bool Has(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

TEST(HtmlReport, OpensOfflineInChromiumAndItsFlameGraphFindsTheFunctions) {
  ASSERT_EQ(RunCapture({"chromium", "--version"}).exit_code, 0)
      << "Debian's chromium is needed (make test installs it)";
  TempDir dir;
  Profile p = ProfileProgram(dir, {"budget"});
  ASSERT_EQ(p.traces.size(), 1u);
  std::string html = HtmlOf(dir, p.traces);
  std::string page = ReadFile(html);
  // Nothing to fetch: no source, link or stylesheet names a place, and no
  // address appears but the SVG namespace's (a name, not a request).
  EXPECT_FALSE(std::regex_search(page, std::regex(R"((src|href)\s*=)"))) << "an external reference";
  std::string without_svg =
      std::regex_replace(page, std::regex("http://www\\.w3\\.org/2000/svg"), "");
  EXPECT_EQ(without_svg.find("http:"), std::string::npos);
  EXPECT_EQ(without_svg.find("https:"), std::string::npos);
  EXPECT_NE(page.find("Content-Security-Policy\" content=\"default-src 'none'"), std::string::npos);

  // Page waste: Map under page_objects under main; search marks page_objects.
  Frames waste = Open("file://" + html + "#search=page_objects");
  EXPECT_EQ(waste.console, "") << "console messages";
  for (const char* name : {"all", "main", "page_objects", "Map"})
    EXPECT_TRUE(Has(waste.names, name)) << name;
  EXPECT_FALSE(Has(waste.names, "heap_objects")) << "no page waste there";
  EXPECT_EQ(waste.matched, std::vector<std::string>{"page_objects"});
  // Switched to allocations: the heap's sites, and a search of both.
  Frames allocations = Open("file://" + html + "#metric=1&search=_objects");
  EXPECT_EQ(allocations.console, "");
  EXPECT_TRUE(Has(allocations.matched, "heap_objects"));
  EXPECT_TRUE(Has(allocations.matched, "kept_objects"));
  EXPECT_FALSE(Has(allocations.names, "Map")) << "Map makes no allocations";

  std::string png = std::string(PAGEWASTE_BUILD_DIR) + "/tests/html_report.png";
  std::remove(png.c_str());
  CommandResult shot =
      RunCapture(Chromium({"--hide-scrollbars", "--window-size=1200,1000", "--screenshot=" + png,
                           "file://" + html + "#search=page_objects"}));
  EXPECT_EQ(shot.exit_code, 0) << shot.err;
  EXPECT_EQ(ReadFile(png).substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8)) << png;
}

TEST(HtmlReport, StaysSmallAndNeedsAFile) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"fork_exec", ProgramPath("exec_target")});
  std::string page = ReadFile(HtmlOf(dir, p.traces));
  // Aggregated: the figures and a pruned tree of stacks, never events.
  EXPECT_LT(page.size(), 100u * 1024);
  EXPECT_NE(page.find("\"processes\":[{\"pid\""), std::string::npos);
  EXPECT_EQ(RunCapture({PagewastePath(), "report", "--format", "html", p.traces.at(0)}).exit_code,
            2);
}

}  // namespace
}  // namespace pagewaste::e2e

namespace pagewaste::e2e {
namespace {

// Colour in text reports: at a terminal (script(1) gives the report one),
// unless NO_COLOR is set; never into a pipe or a file.
TEST(TextColour, OnlyAtATerminalAndNotWithNoColor) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"budget"});
  ASSERT_EQ(p.traces.size(), 1u);
  std::string report = PagewastePath() + " report " + p.traces[0];
  unsetenv("NO_COLOR");
  CommandResult tty = RunCapture({"script", "-qec", report, "/dev/null"});
  EXPECT_EQ(tty.exit_code, 0) << tty.err;
  EXPECT_NE(tty.out.find("\x1b[1mSummary\x1b[0m"), std::string::npos) << tty.out.substr(0, 300);
  EXPECT_NE(tty.out.find("\x1b[31m399,600 B (390.2 KiB) waste\x1b[0m"), std::string::npos);
  setenv("NO_COLOR", "1", 1);
  CommandResult plain_tty = RunCapture({"script", "-qec", report, "/dev/null"});
  unsetenv("NO_COLOR");
  EXPECT_EQ(plain_tty.out.find('\x1b'), std::string::npos);
  EXPECT_NE(plain_tty.out.find("Summary"), std::string::npos);
  CommandResult piped = RunCapture({PagewastePath(), "report", p.traces[0]});
  EXPECT_EQ(piped.out.find('\x1b'), std::string::npos);
  // The same words and figures either way.
  std::string stripped = std::regex_replace(tty.out, std::regex("\x1b\\[[0-9;]*m|\r"), "");
  EXPECT_EQ(stripped, piped.out);
}

}  // namespace
}  // namespace pagewaste::e2e
