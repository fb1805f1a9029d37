// Traces that carry their symbols: `run` symbolizes every return address of
// a trace's stacks once the program has exited and keeps the result in the
// trace, so that the report names the same functions and lines after the
// binary is gone (a CI artifact, reported on another machine).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "e2e_support.h"

namespace pagewaste::e2e {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// Every frame of every call site, as "function file:line".
std::vector<std::string> Frames(const json& report) {
  std::vector<std::string> out;
  for (const auto& site : report["call_sites"])
    for (const auto& f : site["frames"])
      out.push_back(f["function"].get<std::string>() + " " + f["file"].get<std::string>() + ":" +
                    std::to_string(f["line"].get<int>()));
  return out;
}

json ReportJson(const std::string& trace) {
  CommandResult r = RunCapture({PagewastePath(), "report", "--format", "json", trace});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return ParseReport(r.out);
}

class EmbeddedSymbols : public ::testing::TestWithParam<const char*> {};

TEST_P(EmbeddedSymbols, NameTheSameFunctionsAndLinesAfterTheBinaryIsDeleted) {
  TempDir dir;
  std::string copy = dir.path() + "/copy_of_program";
  fs::copy_file(ProgramPath(GetParam()), copy);
  std::string trace = dir.path() + "/t.trace";
  CommandResult run = RunCapture({PagewastePath(), "run", "-o", trace, "--", copy});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  json before = ReportJson(trace);
  fs::remove(copy);
  json after = ReportJson(trace);
  EXPECT_EQ(Frames(after), Frames(before));
  int line = SiteLine("mmap_two_bytes.c", "mmap");
  EXPECT_EQ(SumAtSite(after, "mmap_two_bytes.c", line, "mappings"), 1000u);
  const json* site = FindSite(after, "mmap_two_bytes.c", line);
  ASSERT_NE(site, nullptr);
  bool main_at_line = false;
  for (const auto& f : (*site)["frames"])
    main_at_line |= f["function"] == "main" && f["line"] == line;
  EXPECT_TRUE(main_at_line);
  // The section names the module by its build id.
  CommandResult dump = RunCapture({PagewastePath(), "dump", trace});
  size_t at = dump.out.find("symbol_module path=" + copy + " build_id=");
  ASSERT_NE(at, std::string::npos) << dump.out.substr(0, 2000);
  size_t id = at + std::string("symbol_module path=" + copy + " build_id=").size();
  EXPECT_EQ(dump.out.find('\n', id) - id, 40u);  // a 20-byte GNU build id, in hex
}

INSTANTIATE_TEST_SUITE_P(BothBackends, EmbeddedSymbols,
                         ::testing::Values("mmap_two_bytes", "mmap_two_bytes_static"));

TEST(EmbeddedSymbols, NoSymbolizeLeavesThemToTheBinaries) {
  TempDir dir;
  std::string copy = dir.path() + "/copy_of_program";
  fs::copy_file(ProgramPath("mmap_two_bytes"), copy);
  std::string trace = dir.path() + "/t.trace";
  CommandResult run =
      RunCapture({PagewastePath(), "run", "--no-symbolize", "-o", trace, "--", copy});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(RunCapture({PagewastePath(), "dump", trace}).out.find("symbol"), std::string::npos);
  fs::remove(copy);
  json after = ReportJson(trace);
  const json* site = FindSite(after, "mmap_two_bytes.c", SiteLine("mmap_two_bytes.c", "mmap"));
  EXPECT_EQ(site, nullptr);  // the program's frames are unknown now
}

// A trace without its symbols, reported after another program was put at
// its binary's path: the names of the other program must not be taken for
// the traced one's (the module's build id, recorded in the trace, differs).
TEST(EmbeddedSymbols, ABinaryReplacedSinceTheRunIsNotReadAndTheReportSaysSo) {
  TempDir dir;
  std::string copy = dir.path() + "/program";
  fs::copy_file(ProgramPath("mmap_two_bytes"), copy);
  std::string trace = dir.path() + "/t.trace";
  CommandResult run =
      RunCapture({PagewastePath(), "run", "--no-symbolize", "-o", trace, "--", copy});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  json before = ReportJson(trace);
  EXPECT_NE(FindSite(before, "mmap_two_bytes.c", SiteLine("mmap_two_bytes.c", "mmap")), nullptr);
  EXPECT_EQ(before["trace"]["symbol_warnings"].size(), 0u);
  fs::remove(copy);
  fs::copy_file(ProgramPath("malloc_count"), copy);
  json after = ReportJson(trace);
  for (const std::string& frame : Frames(after))
    EXPECT_EQ(frame.find("malloc_count.c"), std::string::npos) << frame;
  ASSERT_EQ(after["trace"]["symbol_warnings"].size(), 1u);
  std::string warning = after["trace"]["symbol_warnings"][0];
  EXPECT_EQ(warning.rfind(copy + ": build id ", 0), 0u) << warning;
  EXPECT_NE(warning.find("is not the traced module's"), std::string::npos) << warning;
  CommandResult text = RunCapture({PagewastePath(), "report", trace});
  EXPECT_NE(text.out.find("WARNING   " + copy + ": build id"), std::string::npos) << text.out;
}

// Symbols kept between runs: the second run of a program takes its frames
// from the file the first left, named by the program's build id; off, or
// in a store that is not private, the binaries are read again.
std::string ProgramBuildId(const std::string& trace, const std::string& program) {
  CommandResult dump = RunCapture({PagewastePath(), "dump", trace});
  std::string prefix = "symbol_module path=" + program + " build_id=";
  size_t at = dump.out.find(prefix);
  if (at == std::string::npos) return "";
  at += prefix.size();
  return dump.out.substr(at, dump.out.find('\n', at) - at);
}

std::string MainSiteFunction(const std::string& trace) {
  json r = ReportJson(trace);
  int line = SiteLine("mmap_two_bytes.c", "mmap");
  const json* site = FindSite(r, "mmap_two_bytes.c", line);
  if (!site) return "no site at line " + std::to_string(line);
  for (const json& f : (*site)["frames"])
    if (f["line"] == line) return f["function"];
  return "no frame at line " + std::to_string(line);
}

TEST(SymbolStore, ASecondRunTakesTheFramesTheFirstKept) {
  TempDir dir;
  std::string store = dir.path() + "/store", trace = dir.path() + "/t.trace";
  std::string program = ProgramPath("mmap_two_bytes");
  auto run = [&](const std::string& store_setting) {
    fs::remove(trace);
    CommandResult r = RunCapture({"env", "PAGEWASTE_SYMBOL_CACHE=" + store_setting,
                                  PagewastePath(), "run", "-o", trace, "--", program});
    EXPECT_EQ(r.exit_code, 0) << r.err;
  };
  run(store);
  EXPECT_EQ(MainSiteFunction(trace), "main");
  std::string build_id = ProgramBuildId(trace, program);
  ASSERT_EQ(build_id.size(), 40u);
  std::string kept = store + "/" + build_id;
  ASSERT_TRUE(fs::is_regular_file(kept));
  EXPECT_EQ(fs::status(store).permissions(), fs::perms::owner_all);
  EXPECT_EQ(fs::status(kept).permissions(), fs::perms::owner_read | fs::perms::owner_write);

  // The name kept for main, changed in the file (a string record: its
  // length, then its bytes): the next run's report says the changed name.
  std::string bytes = ReadFile(kept);
  size_t at = bytes.find(std::string("\x04main"));
  ASSERT_NE(at, std::string::npos);
  bytes.replace(at + 1, 4, "mAin");
  { std::ofstream(kept, std::ios::binary | std::ios::trunc) << bytes; }
  run(store);
  EXPECT_EQ(MainSiteFunction(trace), "mAin");
  run("off");
  EXPECT_EQ(MainSiteFunction(trace), "main");

  // A store others may enter is not used, and nothing is written there.
  std::string open_store = dir.path() + "/open";
  fs::create_directory(open_store);
  fs::permissions(open_store, fs::perms::owner_all | fs::perms::group_read |
                                  fs::perms::group_exec | fs::perms::others_read |
                                  fs::perms::others_exec);
  run(open_store);
  EXPECT_EQ(MainSiteFunction(trace), "main");
  EXPECT_TRUE(fs::is_empty(open_store));
}

// Call sites keep their key across runs (ASLR moves every address) and
// across copies of the program at other paths: a CI job compares runs by it.
TEST(SiteKeys, AreTheSameAcrossRunsAndCopiesAndTellSitesApart) {
  auto keys_by_line = [](const std::string& program_path, const std::string& dir) {
    std::string trace = dir + "/t.trace";
    CommandResult run = RunCapture({PagewastePath(), "run", "-o", trace, "--", program_path});
    EXPECT_EQ(run.exit_code, 0) << run.err;
    json r = ReportJson(trace);
    std::map<int, std::string> keys;
    for (const char* name : {"mmap", "munmap"}) {
      int line = SiteLine("mmap_two_bytes.c", name);
      const json* site = FindSite(r, "mmap_two_bytes.c", line);
      EXPECT_NE(site, nullptr) << name;
      if (site) keys[line] = (*site)["key"];
    }
    for (const auto& site : r["kernel_sites"]) EXPECT_EQ(site["key"].get<std::string>().size(), 16u);
    return keys;
  };
  TempDir first, second, elsewhere;
  auto a = keys_by_line(ProgramPath("mmap_two_bytes"), first.path());
  auto b = keys_by_line(ProgramPath("mmap_two_bytes"), second.path());
  std::string copy = elsewhere.path() + "/renamed_copy";
  fs::copy_file(ProgramPath("mmap_two_bytes"), copy);
  auto c = keys_by_line(copy, elsewhere.path());
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, c);
  EXPECT_NE(a.begin()->second, a.rbegin()->second);
  for (const auto& [line, key] : a) {
    EXPECT_EQ(key.size(), 16u);
    EXPECT_EQ(key.find_first_not_of("0123456789abcdef"), std::string::npos) << key;
  }
}

// C functions named like C++ type encodings keep their names, in the
// symbols run embeds and in a report made from the binary.
TEST(Symbols, CFunctionsNamedLikeTypeEncodingsKeepTheirNames) {
  TempDir dir;
  for (bool embedded : {true, false}) {
    SCOPED_TRACE(embedded ? "embedded symbols" : "from the binary");
    Profile p = ProfileProgram(dir, {"c_names"},
                               embedded ? std::vector<std::string>{}
                                        : std::vector<std::string>{"--no-symbolize"});
    const json& r = OnlyReport(p);
    const json* site = FindSite(r, "c_names.c", SiteLine("c_names.c", "Pc"));
    ASSERT_NE(site, nullptr);
    std::vector<std::string> names;
    for (const json& f : (*site)["frames"]) names.push_back(f["function"]);
    ASSERT_GE(names.size(), 4u);
    EXPECT_EQ(std::vector<std::string>(names.begin(), names.begin() + 4),
              (std::vector<std::string>{"Pc", "f", "i", "main"}));
    EXPECT_EQ((*site)["mappings"], 1u);
    std::filesystem::remove(p.traces[0]);
  }
}

}  // namespace
}  // namespace pagewaste::e2e
