// Helpers for the end-to-end tests: running programs under pagewaste, reading
// reports, finding sites (e2e_support.h).
#include "e2e_support.h"

#include "schema_check.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

namespace pagewaste::e2e {

namespace fs = std::filesystem;

namespace {

std::string ReadAll(int fd) {
  std::string s;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) s.append(buf, static_cast<size_t>(n));
  return s;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool FrameAt(const nlohmann::json& site, const std::string& file, int line) {
  for (const auto& f : site["frames"])
    if (f["line"] == line && EndsWith(f["file"].get<std::string>(), "/" + file)) return true;
  return false;
}

// Invariants every report must hold: the call sites sum to the summary.
void CheckInvariants(const nlohmann::json& report, const std::string& trace) {
  const auto& summary = report["summary"];
  for (const char* field : {"allocations", "frees", "mappings", "unmappings", "requested_bytes",
                            "page_bytes", "page_waste_bytes", "own_mappings", "leaked_bytes"}) {
    uint64_t sum = 0;
    for (const auto& site : report["call_sites"]) sum += site[field].get<uint64_t>();
    sum += report["other_sites"][field].get<uint64_t>();
    uint64_t total = summary[field].get<uint64_t>();
    EXPECT_EQ(sum, total) << trace << ": call sites' " << field << " do not sum to the summary";
  }
  uint64_t syscalls = 0;
  for (const auto& site : report["call_sites"]) syscalls += site["syscalls"]["total"].get<uint64_t>();
  syscalls += report["other_sites"]["syscalls"]["total"].get<uint64_t>();
  EXPECT_EQ(syscalls, summary["syscalls"]["total"].get<uint64_t>()) << trace;
  EXPECT_GE(summary["page_bytes"].get<uint64_t>(), summary["page_waste_bytes"].get<uint64_t>());
}

}  // namespace

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

nlohmann::json Expanded(const nlohmann::json& doc, const nlohmann::json& part) {
  nlohmann::json out = part;
  for (const char* list : {"call_sites", "kernel_sites", "leak_sites"})
    if (out.contains(list))
      for (auto& site : out[list]) site["frames"] = StackFrames(doc, site["stack"]);
  if (out.contains("peak") && out["peak"].contains("sites"))
    for (auto& site : out["peak"]["sites"]) site["frames"] = StackFrames(doc, site["stack"]);
  return out;
}

nlohmann::json ParseDocument(const std::string& text) {
  nlohmann::json doc = nlohmann::json::parse(text);
  std::string violation = SchemaViolation(ReportSchema(), doc);
  EXPECT_EQ(violation, "");
  if (!violation.empty()) return nlohmann::json::object();
  // What the schema cannot say: every index names an entry, and parents
  // come before their children (so that following them ends).
  const auto& stacks = doc["stacks"];
  for (size_t i = 0; i < stacks.size(); ++i) {
    EXPECT_LT(stacks[i][0].get<int64_t>(), static_cast<int64_t>(doc["frames"].size())) << i;
    EXPECT_LT(stacks[i][1].get<int64_t>(), static_cast<int64_t>(i)) << i;
  }
  auto check_sites = [&](const nlohmann::json& part) {
    for (const char* list : {"call_sites", "kernel_sites", "leak_sites"})
      for (const auto& site : part[list])
        if (!site["stack"].is_null())
          EXPECT_LT(site["stack"].get<size_t>(), stacks.size()) << list;
  };
  check_sites(doc["combined"]);
  for (const auto& process : doc["processes"]) check_sites(process);
  return doc;
}

nlohmann::json ParseReport(const std::string& text) {
  nlohmann::json doc = ParseDocument(text);
  EXPECT_EQ(doc["processes"].size(), 1u);
  return Expanded(doc, doc["processes"][0]);
}

CommandResult RunCapture(const std::vector<std::string>& argv) {
  // Output goes through files: the two streams can be large, and pipes would
  // need a poll loop.
  char out_path[] = "/tmp/pw_out_XXXXXX";
  char err_path[] = "/tmp/pw_err_XXXXXX";
  int out_fd = mkstemp(out_path);
  int err_fd = mkstemp(err_path);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  CommandResult r;
  r.exit_code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
  lseek(out_fd, 0, SEEK_SET);
  lseek(err_fd, 0, SEEK_SET);
  r.out = ReadAll(out_fd);
  r.err = ReadAll(err_fd);
  close(out_fd);
  close(err_fd);
  unlink(out_path);
  unlink(err_path);
  return r;
}

TempDir::TempDir() {
  std::random_device rd;
  path_ = fs::path(PAGEWASTE_TEST_TMP) / ("t" + std::to_string(rd()) + std::to_string(getpid()));
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!::testing::Test::HasFailure()) fs::remove_all(path_, ec);
}

std::vector<std::string> TempDir::Files() const {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(path_)) files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

std::string ProgramPath(const std::string& name) {
  // A test program by its bare name; anything else (a path, or a command
  // such as python3 to find on PATH) as given.
  std::string built = std::string(PAGEWASTE_TEST_PROGRAMS) + "/" + name;
  return name.find('/') == std::string::npos && fs::exists(built) ? built : name;
}

std::string PagewastePath() { return PAGEWASTE_BIN; }

Profile ProfileProgram(const TempDir& dir, const std::vector<std::string>& command,
                       const std::vector<std::string>& run_options) {
  Profile p;
  std::vector<std::string> argv = {PagewastePath(), "run", "-o", dir.path() + "/%e.%p.trace"};
  argv.insert(argv.end(), run_options.begin(), run_options.end());
  argv.push_back("--");
  argv.push_back(ProgramPath(command[0]));
  argv.insert(argv.end(), command.begin() + 1, command.end());
  p.run = RunCapture(argv);
  p.traces = dir.Files();
  for (const std::string& trace : p.traces) {
    CommandResult r = RunCapture({PagewastePath(), "report", "--format", "json", trace});
    // 4: an incomplete trace, reported as far as it goes; tests that expect
    // a whole trace check trace.status.
    EXPECT_TRUE(r.exit_code == 0 || r.exit_code == 4) << trace << ": " << r.err;
    p.reports.push_back(ParseReport(r.out));
    EXPECT_EQ(r.exit_code == 0, p.reports.back()["trace"]["status"] == "complete") << trace;
    CheckInvariants(p.reports.back(), trace);
  }
  return p;
}

const nlohmann::json& OnlyReport(const Profile& p) {
  EXPECT_EQ(p.reports.size(), 1u) << p.run.err;
  static const nlohmann::json empty = nlohmann::json::object();
  return p.reports.empty() ? empty : p.reports[0];
}

int SiteLine(const std::string& source_file, const std::string& name) {
  std::ifstream in(std::string(PAGEWASTE_TEST_SOURCES) + "/" + source_file);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n)
    if (EndsWith(line, "SITE: " + name)) return n;
  ADD_FAILURE() << "no SITE: " << name << " in " << source_file;
  return -1;
}

uint64_t SumAtSite(const nlohmann::json& report, const std::string& file, int line,
                   const std::string& field) {
  uint64_t sum = 0;
  for (const auto& site : report["call_sites"])
    if (FrameAt(site, file, line)) sum += site[field].get<uint64_t>();
  return sum;
}

uint64_t SyscallsAtSite(const nlohmann::json& report, const std::string& file, int line,
                        const std::string& kind) {
  uint64_t sum = 0;
  for (const auto& site : report["call_sites"])
    if (FrameAt(site, file, line)) sum += site["syscalls"][kind].get<uint64_t>();
  return sum;
}

const nlohmann::json* FindSite(const nlohmann::json& report, const std::string& file, int line) {
  for (const auto& site : report["call_sites"])
    if (FrameAt(site, file, line)) return &site;
  return nullptr;
}

std::pair<pid_t, pid_t> StartTraced(const std::string& trace, const std::string& program,
                                    const std::string& backend) {
  pid_t tracer = fork();
  if (tracer == 0) {
    int null_fd = open("/dev/null", O_WRONLY);
    dup2(null_fd, 2);
    execl(PagewastePath().c_str(), "pagewaste", "run", "--backend", backend.c_str(), "-o",
          trace.c_str(), "--", ProgramPath(program).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  pid_t traced = 0;
  for (int i = 0; i < 200 && !traced; ++i) {
    usleep(20000);
    CommandResult dump = RunCapture({PagewastePath(), "dump", trace});
    size_t at = dump.out.find(" pid=");
    if (at != std::string::npos) traced = static_cast<pid_t>(std::stoul(dump.out.substr(at + 5)));
  }
  return {tracer, traced};
}

std::string BpfUnavailable() {
#ifndef PAGEWASTE_HAVE_BPF
  return "built without the bpf backend (apt-get install libbpf-dev bpftool clang)";
#else
  struct stat st;
  if (geteuid() != 0) return "the bpf backend needs root";
  if (stat("/sys/kernel/btf/vmlinux", &st) != 0) return "the kernel has no BTF";
  return "";
#endif
}

std::string StaticBackend() { return BpfUnavailable().empty() ? "bpf" : "ptrace"; }

}  // namespace pagewaste::e2e
