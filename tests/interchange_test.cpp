// What other tools read: folded stacks (flamegraph.pl, inferno, speedscope)
// and pprof's profile.proto, read back by a real consumer, `go tool pprof`.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <map>
#include <sstream>

#include "e2e_support.h"

namespace pagewaste::e2e {
namespace {

using nlohmann::json;

json Combined(const std::vector<std::string>& traces) {
  std::vector<std::string> argv = {PagewastePath(), "report", "--format", "json", "--all-sites"};
  argv.insert(argv.end(), traces.begin(), traces.end());
  CommandResult r = RunCapture(argv);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return ParseDocument(r.out)["combined"]["summary"];
}

uint64_t Total(const json& summary, const std::string& metric) {
  if (metric == "syscalls") return summary["syscalls"]["total"].get<uint64_t>();
  if (metric.rfind("syscalls.", 0) == 0)
    return summary["syscalls"][metric.substr(9)].get<uint64_t>();
  return summary[metric].get<uint64_t>();
}

// The folded lines' values, summed; and every line is "stack value".
uint64_t FoldedSum(const std::string& text) {
  uint64_t sum = 0;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    size_t space = line.rfind(' ');
    EXPECT_NE(space, std::string::npos) << line;
    EXPECT_GT(space, 0u) << line;
    sum += std::stoull(line.substr(space + 1));
  }
  return sum;
}

TEST(Folded, EachMetricSumsToTheJsonTotalsExactly) {
  for (const std::vector<std::string>& command :
       {std::vector<std::string>{"budget"},
        std::vector<std::string>{"fork_exec", ProgramPath("exec_target")}}) {
    TempDir dir;
    Profile p = ProfileProgram(dir, command);
    ASSERT_FALSE(p.traces.empty());
    json summary = Combined(p.traces);
    for (const char* metric :
         {"allocations", "requested_bytes", "page_bytes", "page_waste_bytes", "waste_bytes",
          "syscalls", "syscalls.mmap", "syscall_ns", "leaked_bytes", "leaked_allocations"}) {
      std::vector<std::string> argv = {PagewastePath(), "report",   "--format",
                                       "folded",        "--metric", metric};
      argv.insert(argv.end(), p.traces.begin(), p.traces.end());
      CommandResult r = RunCapture(argv);
      ASSERT_EQ(r.exit_code, 0) << r.err;
      EXPECT_EQ(FoldedSum(r.out), Total(summary, metric)) << command[0] << " " << metric;
    }
  }
  // The budget program's page waste is one stack, outermost first.
  TempDir dir;
  Profile p = ProfileProgram(dir, {"budget"});
  CommandResult r = RunCapture({PagewastePath(), "report", "--format", "folded", p.traces.at(0)});
  EXPECT_NE(r.out.find(";main;page_objects;Map 399600\n"), std::string::npos) << r.out;
  EXPECT_EQ(RunCapture({PagewastePath(), "report", "--format", "folded", "--metric", "nonsense",
                        p.traces.at(0)})
                .exit_code,
            2);
}

struct Raw {
  std::vector<std::string> types;
  std::vector<uint64_t> sums;
  std::string locations;  // the Locations and Mappings sections as printed
};

// `go tool pprof -raw`: the sample types, each sample's values, the
// locations.
Raw ReadRaw(const std::string& profile) {
  CommandResult r = RunCapture({"go", "tool", "pprof", "-raw", profile});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  Raw raw;
  std::istringstream lines(r.out);
  std::string line;
  while (std::getline(lines, line) && line != "Samples:") {
  }
  std::getline(lines, line);
  std::istringstream header(line);
  for (std::string type; header >> type;) {
    raw.types.push_back(type.substr(0, type.find('/')));
    raw.sums.push_back(0);
  }
  while (std::getline(lines, line) && line != "Locations") {
    std::istringstream values(line.substr(0, line.find(':')));
    uint64_t v;
    for (size_t i = 0; i < raw.sums.size() && values >> v; ++i) raw.sums[i] += v;
  }
  for (; std::getline(lines, line);) raw.locations += line + "\n";
  return raw;
}

TEST(Pprof, GoToolPprofReadsExactlyTheJsonFigures) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"fork_exec", ProgramPath("exec_target")});
  ASSERT_EQ(p.traces.size(), 3u);
  json summary = Combined(p.traces);
  std::string profile = dir.path() + "/profile.pb.gz";
  std::vector<std::string> argv = {PagewastePath(), "report", "--format", "pprof", "-o", profile};
  argv.insert(argv.end(), p.traces.begin(), p.traces.end());
  CommandResult r = RunCapture(argv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Raw raw = ReadRaw(profile);
  const std::map<std::string, std::string> metric_of = {
      {"allocations", "allocations"}, {"requested", "requested_bytes"},
      {"in_pages", "page_bytes"},     {"page_waste", "page_waste_bytes"},
      {"syscalls", "syscalls"},       {"syscall_time", "syscall_ns"},
      {"leaked", "leaked_bytes"}};
  ASSERT_EQ(raw.types.size(), metric_of.size());
  for (size_t i = 0; i < raw.types.size(); ++i)
    EXPECT_EQ(raw.sums[i], Total(summary, metric_of.at(raw.types[i]))) << raw.types[i];
  // Each sample type by name, as -sample_index picks it; page waste first.
  for (const auto& [type, metric] : metric_of) {
    CommandResult top =
        RunCapture({"go", "tool", "pprof", "-top", "-sample_index=" + type, profile});
    EXPECT_EQ(top.exit_code, 0) << top.err;
    EXPECT_NE(top.out.find("Type: " + type + "\n"), std::string::npos) << top.out;
  }
  EXPECT_NE(RunCapture({"go", "tool", "pprof", "-top", profile}).out.find("Type: page_waste\n"),
            std::string::npos);
  // Three processes, each named in the comments with its command line.
  CommandResult traces = RunCapture({"go", "tool", "pprof", "-raw", profile});
  EXPECT_NE(traces.out.find("exec_target"), std::string::npos);
  EXPECT_NE(traces.out.find("/fork_exec: "), std::string::npos);
}

TEST(Pprof, TheEmbeddedSymbolsGiveTheSameProfileAsTheBinaries) {
  TempDir with, without;
  Profile a = ProfileProgram(with, {"budget"});
  Profile b = ProfileProgram(without, {"budget"}, {"--no-symbolize"});
  ASSERT_EQ(a.traces.size(), 1u);
  ASSERT_EQ(b.traces.size(), 1u);
  std::string pa = with.path() + "/a.pb.gz", pb = without.path() + "/b.pb.gz";
  ASSERT_EQ(
      RunCapture({PagewastePath(), "report", "--format", "pprof", "-o", pa, a.traces[0]}).exit_code,
      0);
  ASSERT_EQ(
      RunCapture({PagewastePath(), "report", "--format", "pprof", "-o", pb, b.traces[0]}).exit_code,
      0);
  Raw ra = ReadRaw(pa), rb = ReadRaw(pb);
  // Functions, files, lines, inline chains, module offsets, mappings and
  // build ids: the same. The figures too, but for the time in the kernel.
  EXPECT_EQ(ra.locations, rb.locations);
  EXPECT_NE(ra.locations.find("page_objects"), std::string::npos) << ra.locations;
  for (size_t i = 0; i < ra.types.size(); ++i)
    if (ra.types[i] != "syscall_time") EXPECT_EQ(ra.sums[i], rb.sums[i]) << ra.types[i];
  EXPECT_EQ(RunCapture({PagewastePath(), "report", "--format", "pprof", a.traces[0]}).exit_code, 2);
}

}  // namespace
}  // namespace pagewaste::e2e
