// What `pagewaste run` and `report` owe the people who run them: a set-uid
// program keeps its privileges or is said to lose them, trace files are
// private and never written through a planted link, and no option ends in
// an abort.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "e2e_support.h"

namespace pagewaste::e2e {
namespace {

namespace fs = std::filesystem;

int Lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

// A directory anyone may enter, holding copies of pagewaste, its shim and
// print_euid installed set-uid root, for a run as nobody (the build tree may
// be under a home directory nobody cannot enter).
class SetUidSetup {
 public:
  SetUidSetup() {
    char templ[] = "/tmp/pagewaste-setuid-XXXXXX";
    if (!mkdtemp(templ)) return;
    struct statvfs fs_info;
    if (statvfs(templ, &fs_info) == 0 && (fs_info.f_flag & ST_NOSUID)) {
      rmdir(templ);
      return;  // set-uid bits mean nothing on a nosuid /tmp
    }
    dir_ = templ;
    chmod(dir_.c_str(), 0777);
    fs::copy_file(PagewastePath(), dir_ + "/pagewaste");
    // Beside it, where run looks for its shim.
    fs::copy_file(std::string(PAGEWASTE_BUILD_DIR) + "/libtrace/libpagewaste_preload.so",
                  dir_ + "/libpagewaste_preload.so");
    fs::copy_file(ProgramPath("print_euid"), dir_ + "/print_euid");
    chown((dir_ + "/print_euid").c_str(), 0, 0);
    chmod((dir_ + "/print_euid").c_str(), 04755);
    fs::copy_file(ProgramPath("secure_exec"), dir_ + "/secure_exec");
    chown((dir_ + "/secure_exec").c_str(), 0, 0);
    chmod((dir_ + "/secure_exec").c_str(), 04755);
    // Set-uid nobody, for root to run: it loses privileges by its bit.
    for (const char* program : {"print_euid", "print_euid_static"}) {
      std::string copy = dir_ + "/" + program + "_nobody";
      fs::copy_file(ProgramPath(program), copy);
      chown(copy.c_str(), 65534, 65534);
      chmod(copy.c_str(), 04755);
    }
  }
  ~SetUidSetup() {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }
  const std::string& dir() const { return dir_; }

  CommandResult RunAsNobody(const std::vector<std::string>& run_args) const {
    std::vector<std::string> argv = {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                     dir_ + "/pagewaste", "run", "-o", dir_ + "/t.%p.trace"};
    argv.insert(argv.end(), run_args.begin(), run_args.end());
    argv.push_back("--");
    argv.push_back(dir_ + "/print_euid");
    return RunCapture(argv);
  }

 private:
  std::string dir_;
};

// The trace files in dir.
int TracesIn(const std::string& dir) {
  int traces = 0;
  for (const auto& entry : fs::directory_iterator(dir))
    traces += entry.path().extension() == ".trace";
  return traces;
}

// A set-uid copy of the shim in a system library directory, the only place
// the loader preloads from into a set-uid program (secure mode, AT_SECURE),
// and then only by a name without a slash; removed when it goes.
class SecureShim {
 public:
  explicit SecureShim(const SetUidSetup& setup)
      : name_("libpagewaste_secure_test_" + std::to_string(getpid()) + ".so"),
        path_("/usr/lib/x86_64-linux-gnu/" + name_) {
    fs::copy_file(setup.dir() + "/libpagewaste_preload.so", path_,
                  fs::copy_options::overwrite_existing);
    chmod(path_.c_str(), 04755);
  }
  ~SecureShim() { fs::remove(path_); }
  const std::string& name() const { return name_; }

 private:
  std::string name_, path_;
};

TEST(SetUid, AProgramNobodyMayTraceRunsWithItsPrivilegesAndRunSaysWhy) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root, to install a set-uid root program";
  SetUidSetup setup;
  if (setup.dir().empty()) GTEST_SKIP() << "/tmp is mounted nosuid";
  CommandResult r = setup.RunAsNobody({});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "euid=0\n");  // as without pagewaste
  EXPECT_NE(r.err.find("print_euid is set-uid (uid 0)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("it runs untraced, with its privileges"), std::string::npos) << r.err;
  EXPECT_EQ(Lines(r.err), 1) << r.err;
  EXPECT_EQ(TracesIn(setup.dir()), 0);
}

// Asked for the ptrace backend, which would run it without its privileges,
// run refuses the program and says so.
TEST(SetUid, ForcedPtraceRefusesAProgramItWouldRunWithoutItsPrivileges) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root, to install a set-uid root program";
  SetUidSetup setup;
  if (setup.dir().empty()) GTEST_SKIP() << "/tmp is mounted nosuid";
  CommandResult r = setup.RunAsNobody({"--backend", "ptrace"});
  EXPECT_EQ(r.exit_code, 126) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("print_euid is set-uid (uid 0), which a traced program gets only when "
                       "pagewaste runs as root: not run"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(Lines(r.err), 1) << r.err;
}

// Exec'd inside a tree traced by a user who may not trace it with its
// privileges (the kernel's rule for any traced process), a set-uid program
// would run as that user: it is killed at its exec, before it runs, and
// named. Under both backends: the ptrace backend's filter needs
// PR_SET_NO_NEW_PRIVS from such a user, which withholds the same.
TEST(SetUid, OneExecdInsideATreeNobodyTracesIsRefusedAndNamed) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root, to install a set-uid root program";
  SetUidSetup setup;
  if (setup.dir().empty()) GTEST_SKIP() << "/tmp is mounted nosuid";
  for (const char* backend : {"auto", "ptrace"}) {
    SCOPED_TRACE(backend);
    CommandResult r = RunCapture({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                  setup.dir() + "/pagewaste", "run", "--backend", backend, "-o",
                                  setup.dir() + "/t.%p.trace", "--", "sh", "-c",
                                  setup.dir() + "/print_euid; echo status $?"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "status 137\n");  // never ran as nobody
    EXPECT_NE(r.err.find(setup.dir() + "/print_euid is set-uid (uid 0), which a traced process "
                         "gets only when pagewaste runs as root: killed before it ran"),
              std::string::npos)
        << r.err;
  }
}

// Root may trace a program with its privileges: one that is set-uid nobody
// runs as nobody, as it does without pagewaste, and is traced, static (the
// ptrace backend's filter goes in without PR_SET_NO_NEW_PRIVS) or dynamic
// inside a tree (its loader ignores LD_PRELOAD in secure mode, so the
// tracer records it).
TEST(SetUid, RootTracesASetUidNobodyProgramAsNobody) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root, to install a set-uid program";
  SetUidSetup setup;
  if (setup.dir().empty()) GTEST_SKIP() << "/tmp is mounted nosuid";
  TempDir dir;
  std::string program = setup.dir() + "/print_euid_static_nobody";
  CommandResult plain = RunCapture({program});
  EXPECT_EQ(plain.out, "euid=65534\n");
  Profile p = ProfileProgram(dir, {program});
  EXPECT_EQ(p.run.exit_code, 0) << p.run.err;
  EXPECT_EQ(p.run.out, "euid=65534\n");
  EXPECT_NE(p.run.err.find(program + " is statically linked: no dynamic loader to preload into; "
                           "set-uid (uid 65534), it keeps its privileges; tracing it with " +
                           (StaticBackend() == "bpf" ? "BPF" : "ptrace")),
            std::string::npos)
      << p.run.err;
  const nlohmann::json& r = OnlyReport(p);
  EXPECT_EQ(r["process"]["backend"], StaticBackend());
  EXPECT_EQ(r["trace"]["status"], "complete");

  TempDir tree;
  Profile q = ProfileProgram(tree, {"sh", "-c", setup.dir() + "/print_euid_nobody; true"});
  EXPECT_EQ(q.run.exit_code, 0) << q.run.err;
  EXPECT_EQ(q.run.out, "euid=65534\n");
  ASSERT_EQ(q.reports.size(), 2u) << q.run.err;
  int by_tracer = 0;  // ptrace, or BPF as root
  for (const nlohmann::json& report : q.reports) {
    if (report["process"]["backend"] == StaticBackend()) {
      ++by_tracer;
      EXPECT_NE(report["process"].dump().find("print_euid_nobody"), std::string::npos);
      EXPECT_EQ(report["trace"]["status"], "complete");
    }
  }
  EXPECT_EQ(by_tracer, 1);
}

// A set-uid root program run by nobody with the shim preloaded (secure
// mode): the shim is in it, and takes nothing from the caller's
// environment: a PAGEWASTE_OUTPUT that would have the privileged process
// write where the caller says is not obeyed, nothing is traced. A program
// that works the C library hard, becomes root for good and execs behaves
// exactly as without the shim, and the root child sees none of the
// caller's tracing variables.
TEST(SetUid, AProgramWithTheShimInSecureModeBehavesAsWithout) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root, to install a library in a system directory";
  SetUidSetup setup;
  if (setup.dir().empty()) GTEST_SKIP() << "/tmp is mounted nosuid";
  SecureShim shim(setup);
  const std::vector<std::string> as_nobody = {"setpriv", "--reuid=65534", "--regid=65534",
                                              "--clear-groups", "env"};
  std::vector<std::string> preloaded = as_nobody;
  preloaded.insert(preloaded.end(),
                   {"LD_PRELOAD=" + shim.name(), "PAGEWASTE_OUTPUT=" + setup.dir() + "/p.%p.trace",
                    "PAGEWASTE_SESSION=1234abcd", "PAGEWASTE_SAMPLE=4096"});
  auto run = [&](std::vector<std::string> argv, const std::vector<std::string>& command) {
    argv.insert(argv.end(), command.begin(), command.end());
    return RunCapture(argv);
  };

  CommandResult loaded = run(preloaded, {setup.dir() + "/print_euid", "shim"});
  EXPECT_EQ(loaded.exit_code, 0) << loaded.err;
  EXPECT_EQ(loaded.out, "euid=0\nshim loaded\n");  // privileged, and the shim in it
  EXPECT_EQ(loaded.err, "");

  CommandResult plain = run(as_nobody, {setup.dir() + "/secure_exec"});
  CommandResult traced = run(preloaded, {setup.dir() + "/secure_exec"});
  const std::string expected =
      "euid=0 mallocs=20000 signals=2 dlopen=ok\n"
      "child euid=0\n";
  EXPECT_EQ(plain.out, expected);
  EXPECT_EQ(plain.exit_code, 7) << plain.err;
  EXPECT_EQ(traced.out, expected);
  EXPECT_EQ(traced.exit_code, 7) << traced.err;
  EXPECT_EQ(traced.err, "");
  EXPECT_EQ(TracesIn(setup.dir()), 0);
}

// Root running a set-uid root program gains nothing by it: the loader is not
// in secure mode, and the shim traces it.
TEST(SetUid, RootsOwnSetUidProgramIsTracedByTheShim) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  SetUidSetup setup;
  if (setup.dir().empty()) GTEST_SKIP() << "/tmp is mounted nosuid";
  TempDir dir;
  Profile p = ProfileProgram(dir, {setup.dir() + "/print_euid"});
  EXPECT_EQ(p.run.exit_code, 0) << p.run.err;
  EXPECT_EQ(p.run.out, "euid=0\n");
  EXPECT_EQ(p.run.err.find("set-uid"), std::string::npos) << p.run.err;
  const nlohmann::json& r = OnlyReport(p);
  EXPECT_EQ(r["process"]["backend"], "preload");
}

TEST(TraceFiles, ArePrivateToTheirOwner) {
  for (const char* program : {"mmap_two_bytes", "mmap_two_bytes_static"}) {
    TempDir dir;
    for (const char* compress : {"--no-compress", ""}) {
      std::vector<std::string> options;
      if (*compress) options.push_back(compress);
      Profile p = ProfileProgram(dir, {program}, options);
      ASSERT_EQ(p.traces.size(), 1u) << program;
      struct stat st;
      ASSERT_EQ(stat(p.traces[0].c_str(), &st), 0);
      EXPECT_EQ(st.st_mode & 0777, 0600u) << program << " " << compress;
      fs::remove(p.traces[0]);
    }
  }
}

TEST(TraceFiles, ALinkPlantedAtTheOutputPathIsNotFollowed) {
  for (const char* program : {"mmap_two_bytes", "mmap_two_bytes_static"}) {
    TempDir dir;
    std::string victim = dir.path() + "/victim";
    { std::ofstream(victim) << "precious\n"; }
    fs::create_symlink(victim, dir.path() + "/x.trace");
    CommandResult r = RunCapture({PagewastePath(), "run", "-o", dir.path() + "/x.trace", "--",
                                  ProgramPath(program)});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::ifstream in(victim);
    std::string content((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(content, "precious\n") << program;
    EXPECT_TRUE(fs::is_symlink(dir.path() + "/x.trace")) << program;
    EXPECT_TRUE(fs::is_regular_file(dir.path() + "/x.1.trace")) << program << ": " << r.err;
  }
}

std::string Contents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// report, check and diff write their outputs as run writes traces: never
// through a link, never over an input, a file replaced by a new private one.
TEST(OutputFiles, NeverThroughALinkNorOverAnInputAndPrivate) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"mmap_two_bytes"});
  ASSERT_EQ(p.traces.size(), 1u);
  const std::string trace = p.traces[0];
  const std::string before = Contents(trace);
  std::string victim = dir.path() + "/victim", link = dir.path() + "/link";
  { std::ofstream(victim) << "precious\n"; }
  fs::create_symlink(victim, link);
  std::string relative_trace = dir.path() + "/./" + fs::path(trace).filename().string();
  struct Case {
    std::vector<std::string> argv;
    const char* says;
  };
  std::vector<Case> refused = {
      {{"report", "-o", link, trace}, "a symbolic link"},
      {{"report", "--format", "json", "-o", link, trace}, "a symbolic link"},
      {{"report", "--format", "html", "-o", trace, trace}, "is an input"},
      {{"report", "--format", "pprof", "-o", relative_trace, trace}, "is the input"},
      {{"report", "-o", dir.path() + "/no/such/dir/r.txt", trace}, "cannot create a file in"},
      {{"check", "--max-syscalls", "1", "--sarif", link, trace}, "a symbolic link"},
      {{"check", "--max-syscalls", "1", "--junit", trace, trace}, "is an input"},
      {{"diff", "-o", trace, trace, trace}, "is an input"},
      {{"diff", "--markdown", link, trace, trace}, "a symbolic link"},
  };
  for (const Case& c : refused) {
    std::vector<std::string> argv = {PagewastePath()};
    argv.insert(argv.end(), c.argv.begin(), c.argv.end());
    CommandResult r = RunCapture(argv);
    EXPECT_EQ(r.exit_code, 2) << c.argv[0] << " " << c.argv[1] << ": " << r.err;
    EXPECT_EQ(Lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
  }
  EXPECT_EQ(Contents(victim), "precious\n");
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(Contents(trace), before);
  // An existing report is replaced whole, by a file of the user's alone,
  // and nothing is left beside it.
  std::string out = dir.path() + "/report.txt";
  { std::ofstream(out) << "an older report\n"; }
  fs::permissions(out, fs::perms(0644));
  CommandResult r = RunCapture({PagewastePath(), "report", "-o", out, trace});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Contents(out).rfind("pagewaste report: ", 0), 0u);
  struct stat st;
  ASSERT_EQ(stat(out.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  size_t files = 0;
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, 4u);  // the trace, victim, link and report.txt
}

// What would make the whole run worthless fails before the program
// starts: traces with nowhere to go, a budget that cannot be used.
TEST(RunInputs, AreCheckedBeforeTheProgramStarts) {
  TempDir dir;
  std::string budget = dir.path() + "/budget.json";
  { std::ofstream(budget) << R"({"limits": [{"metric": "page_wast_bytes", "max": 1}]})"; }
  struct Case {
    std::vector<std::string> options;
    const char* says;
  };
  for (const Case& c :
       {Case{{"-o", dir.path() + "/no/such/dir/t.trace"}, "cannot write traces in"},
        Case{{"-o", dir.path() + "/t.trace", "--check", budget}, "limits[0].metric: unknown metric"},
        Case{{"-o", dir.path() + "/t.trace", "--check", dir.path() + "/missing.json"},
             "cannot read the budget"}}) {
    std::vector<std::string> argv = {PagewastePath(), "run"};
    argv.insert(argv.end(), c.options.begin(), c.options.end());
    argv.insert(argv.end(), {"--", "/bin/echo", "the program ran"});
    CommandResult r = RunCapture(argv);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(r.out, "") << "the program ran";
    EXPECT_EQ(Lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
  }
  EXPECT_EQ(dir.Files(), (std::vector<std::string>{budget}));
}

TEST(Options, ASizeTooLargeForAnyIntegerIsOneLineAndExit2) {
  TempDir dir;
  Profile p = ProfileProgram(dir, {"mmap_two_bytes"});
  ASSERT_EQ(p.traces.size(), 1u);
  // Too large for any integer, or no page size (a power of two from 4K to
  // 1G): 2^63 wrapped to a waste of 18,446,744,073,709,551,316 B; 1, 8 and
  // 16 were taken.
  for (const char* size : {"1234567890123456789012345", "17179869184G", "-4K",
                           "9223372036854775808", "1", "8", "16", "2G"}) {
    CommandResult r = RunCapture({PagewastePath(), "report", "--what-if",
                                  std::string("page-size=") + size, p.traces[0]});
    EXPECT_EQ(r.exit_code, 2) << size << ": " << r.err;
    EXPECT_EQ(Lines(r.err), 1) << r.err;
    EXPECT_EQ(r.err.rfind("pagewaste: ", 0), 0u) << r.err;
  }
  for (const char* top : {"-1", "0", "99999999999999999999"}) {
    CommandResult r = RunCapture({PagewastePath(), "report", "--top", top, p.traces[0]});
    EXPECT_EQ(r.exit_code, 2) << top << ": " << r.err;
    EXPECT_EQ(Lines(r.err), 1) << r.err;
  }
}

}  // namespace
}  // namespace pagewaste::e2e
