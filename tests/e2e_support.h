// Helpers for the end-to-end tests: run a test program under
// `pagewaste run`, read back its reports as JSON, and find call sites by the
// "// SITE: name" markers in the test programs' sources.
#pragma once

#include <nlohmann/json.hpp>

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "render/report_document.h"  // StackFrames
#include "support/digit_grouping.h"  // GroupDigits: figures as every output writes them

namespace pagewaste::e2e {

struct CommandResult {
  int exit_code = -1;  // 128+N for signal N
  std::string out;
  std::string err;
};

// A file's bytes ("" when it cannot be read).
std::string ReadFile(const std::string& path);

// Runs argv, capturing stdout and stderr.
CommandResult RunCapture(const std::vector<std::string>& argv);

// A fresh directory under the build tree's test area, removed afterwards.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::vector<std::string> Files() const;  // sorted

 private:
  std::string path_;
};

struct Profile {
  CommandResult run;                 // `pagewaste run` itself
  std::vector<std::string> traces;   // the trace files it left
  std::vector<nlohmann::json> reports;  // `report --format json` of each
};

// Profiles program (a name under the built test programs, or a path) with
// args. Fails the calling test on a report error.
// run_options go to `pagewaste run` before the command (e.g. --no-compress).
Profile ProfileProgram(const TempDir& dir, const std::vector<std::string>& command,
                       const std::vector<std::string>& run_options = {});

// The one report of a profile that must hold exactly one trace (fails the
// test otherwise, and returns an empty object).
const nlohmann::json& OnlyReport(const Profile& p);

std::string ProgramPath(const std::string& name);

// Starts `pagewaste run --backend backend -o trace -- program` in the
// background (its stderr to /dev/null) and waits until the program's trace
// names its pid. Returns pagewaste's pid and the program's (0 if it never
// started).
std::pair<pid_t, pid_t> StartTraced(const std::string& trace, const std::string& program,
                                    const std::string& backend = "auto");

// Why the bpf backend cannot run here (not built, not root, no BTF); empty
// if it can.
std::string BpfUnavailable();
// Skips a test that needs the bpf backend where it cannot run, saying why;
// fails it instead where it is required (REQUIRE_BPF, as in CI).
#ifdef PAGEWASTE_REQUIRE_BPF
#define SKIP_WITHOUT_BPF()                                                       \
  do {                                                                           \
    std::string why = BpfUnavailable();                                          \
    if (!why.empty()) FAIL() << "required (REQUIRE_BPF) but cannot run: " << why; \
  } while (0)
#else
#define SKIP_WITHOUT_BPF()                                   \
  do {                                                       \
    std::string why = BpfUnavailable();                      \
    if (!why.empty()) GTEST_SKIP() << why;                   \
  } while (0)
#endif
// The backend `run` picks for a static program here: bpf where it can run,
// ptrace elsewhere.
std::string StaticBackend();
std::string PagewastePath();

// The line of "// SITE: name" (or "# SITE: name") in a test program's source.
int SiteLine(const std::string& source_file, const std::string& name);

// `report --format json` output (schema_version 2), checked against the
// schema. The compact form names each site's stack by index into shared
// tables; the views below write each site's frames out ("frames",
// innermost first), as the tests read them.
nlohmann::json ParseDocument(const std::string& text);
// The one process of a one-trace report, its sites' frames written out.
nlohmann::json ParseReport(const std::string& text);
// A part of the document (a process, or `combined`) with its sites' frames.
// (StackFrames, render/report_document.h.)
nlohmann::json Expanded(const nlohmann::json& doc, const nlohmann::json& part);

// Sums a numeric field over the call sites with a frame at file:line.
uint64_t SumAtSite(const nlohmann::json& report, const std::string& file, int line,
                   const std::string& field);
uint64_t SyscallsAtSite(const nlohmann::json& report, const std::string& file, int line,
                        const std::string& kind);
// The first call site with a frame at file:line, or null.
const nlohmann::json* FindSite(const nlohmann::json& report, const std::string& file, int line);

}  // namespace pagewaste::e2e
