// The command line: every command's options, and the dispatch to it (cli.h).
#include "cli.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>

#include "ci_commands.h"
#include "dump_command.h"
#include "exit_codes.h"
#include "render/render.h"
#include "io/byte_sizes.h"
#include "replay/replay.h"
#include "run_command.h"

namespace pagewaste {
namespace {

// The bpf backend's ring buffer: a power of two from 4 KiB to 1 GiB.
CLI::Validator RingBufferSize() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        uint64_t v = std::stoull(value);
        bool power = v && (v & (v - 1)) == 0;
        return power && v >= 4096 && v <= (uint64_t{1} << 30) ? ""
                                                               : "must be a power of two from 4K to 1G";
      },
      "SIZE");
}


struct ReportArgs {
  std::vector<std::string> what_if;
  size_t timeline_samples = 60;
  std::string format = "text";
  size_t top = 0;
  bool all_sites = false;
  std::string metric;
  std::string output;
  std::vector<std::string> traces;
  CodeArgs code;
};

// --metric for a format that takes one: a site's figure for folded
// stacks, a sample type for pprof; false, said, for one it does not take.
bool MetricFitsFormat(const std::string& metric, const std::string& format) {
  uint64_t unused;
  std::string sample_type;
  if (format == "folded" && !FigureOf(CallSite{}, metric, &unused)) {
    fmt::print(stderr, "pagewaste: --metric {}: not a call site's figure ({})\n", metric,
               MetricNames([](const Metric& m) { return !m.whole_run_only(); }));
    return false;
  }
  if (format == "pprof" && !PprofMetric(metric, &sample_type)) {
    fmt::print(stderr, "pagewaste: --metric {}: pprof's sample types are those of {}\n", metric,
               MetricNames([](const Metric& m) { return !m.pprof_type.empty(); }));
    return false;
  }
  return true;
}

// --what-if page-size=SIZE and allocator=MODEL into options; false, said,
// for one that is neither.
bool ParseWhatIf(const std::vector<std::string>& what_if, ReplayOptions* options) {
  for (const std::string& w : what_if) {
    std::string key = w.substr(0, w.find('='));
    std::string value = w.find('=') == std::string::npos ? "" : w.substr(w.find('=') + 1);
    uint64_t size;
    AllocatorModel model;
    if (key == "page-size" && ParsePageSize(value, &size)) {
      options->what_if_page_sizes.push_back(size);
    } else if (key == "allocator" && ParseAllocatorModel(value, &model)) {
      options->what_if_models.push_back(model);
    } else {
      fmt::print(stderr, "pagewaste: --what-if {}: expected page-size=SIZE (a power of two from "
                         "4K to 1G) or allocator=page|size-class|arena\n", w);
      return false;
    }
  }
  return true;
}

// The writer's output, from the combined view, to path (- or empty:
// stdout), committed only when whole; false, said, when it cannot be.
bool WriteReport(ReportWriter* writer, CombinedView* combined, const std::string& path) {
  OutputFile out;
  std::string err;
  if (!out.Open(path, &err)) {
    fmt::print(stderr, "pagewaste: {}\n", err);
    return false;
  }
  if (!writer->Finish(combined->Finish(), &out, &err)) {
    // Not committed: the output file is left as it was.
    fmt::print(stderr, "pagewaste: {}\n", err);
    return false;
  }
  if (!out.Commit(&err)) {
    fmt::print(stderr, "pagewaste: {}\n", err);
    return false;
  }
  return true;
}

int ReportCommand(const ReportArgs& args) {
  int code = exit_code::kOk;
  ReplayOptions options;
  // Text shows the top sites. JSON lists the first 500 by each ranking and
  // sums the rest in other_sites, so that sites still add up to the totals
  // and a compiler's 100,000 sites do not make a file no CI keeps;
  // --all-sites lists every one. The combined view of several traces
  // merges all their sites, and cuts afterwards.
  RenderOptions render;
  render.top = args.all_sites ? 0 : args.top ? args.top : (args.format == "text" ? 10 : 500);
  // Colour only for a person at a terminal, and never when NO_COLOR is set
  // (no-color.org: present and not empty).
  const char* no_color = getenv("NO_COLOR");
  render.colour = (args.output.empty() || args.output == "-") && isatty(STDOUT_FILENO) &&
                  !(no_color && *no_color);
  // Flame graphs and profiles hold every site.
  options.top = args.traces.size() > 1 || args.format != "text" ? 0 : render.top;
  std::string metric = args.metric.empty() ? "page_waste_bytes" : args.metric;
  if (!MetricFitsFormat(metric, args.format)) return exit_code::kUsage;
  if (!CheckOutputs({args.output}, args.traces)) return exit_code::kUsage;
  if ((args.format == "pprof" || args.format == "html") && args.output.empty()) {
    fmt::print(stderr, "pagewaste: --format {} writes a file: give -o FILE (- for stdout)\n",
               args.format);
    return exit_code::kUsage;
  }
  options.timeline_samples = args.timeline_samples;
  options.code = CodeRulesOf(args.code);
  // Progress for large traces, where someone is watching.
  if (isatty(STDERR_FILENO)) options.progress_from_bytes = 64 << 20;
  if (!ParseWhatIf(args.what_if, &options)) return exit_code::kUsage;
  // One trace at a time: each process's report goes to the writer and the
  // combined view, and is let go before the next trace replays.
  std::unique_ptr<ReportWriter> writer = args.format == "json"     ? JsonWriter(render)
                                         : args.format == "folded" ? FoldedWriter(metric)
                                         : args.format == "pprof"  ? PprofWriter(metric)
                                         : args.format == "html"   ? HtmlWriter()
                                                   : TextWriter(render, args.traces.size());
  CombinedView combined;
  for (const std::string& path : args.traces) {
    Report report;
    std::string err;
    if (!ReplayTrace(path, options, &report, &err)) {
      fmt::print(stderr, "pagewaste: {}\n", err);
      return exit_code::kUnreadableTrace;
    }
    if (report.process.status != TraceStatus::kComplete) {
      fmt::print(stderr, "pagewaste: {}: trace is {} ({}); reporting what it holds\n", path,
                 TraceStatusName(report.process.status), report.process.status_message);
      code = exit_code::kIncompleteTrace;
    }
    writer->AddProcess(report);
    combined.Add(std::move(report));
  }
  return WriteReport(writer.get(), &combined, args.output) ? code : exit_code::kInternal;
}

// Which frames are the program's: report, check and diff take the same.
void AddCodeOptions(CLI::App* cmd, CodeArgs* code) {
  cmd->add_option("--source-root", code->source_root,
                  "Source files under DIR are the program's and are shown relative to it "
                  "(default: the current directory)");
  cmd->add_option("--own-code", code->own,
                  "Frames whose function, source file or module matches the glob PATTERN are "
                  "the program's own code, whatever else says; repeatable");
  cmd->add_option("--library-code", code->library,
                  "Frames matching PATTERN are a library's: a call site is named by its first "
                  "frame outside them; repeatable");
}

// The options check and diff share.
void AddCiOptions(CLI::App* cmd, CiArgs* ci) {
  cmd->add_option("--junit", ci->junit, "Also write JUnit XML to FILE");
  cmd->add_option("--sarif", ci->sarif, "Also write SARIF 2.1.0 to FILE (for code scanning)");
  cmd->add_option("--markdown", ci->markdown, "Also write a Markdown summary to FILE");
  cmd->add_flag("--github", ci->github,
                "Print GitHub workflow-command annotations, and append the Markdown summary "
                "to $GITHUB_STEP_SUMMARY when it is set");
  AddCodeOptions(cmd, &ci->code);
}

// `run`'s options, with what the command line says differently from
// RunOptions (a backend by name, flags that turn things off, a budget).
struct RunArgs {
  RunOptions options;
  std::string backend = "auto";
  bool no_compress = false;
  bool no_symbolize = false;
  std::string check;  // --check FILE
};

CLI::App* AddRunCommand(CLI::App* app, RunArgs* run) {
  CLI::App* cmd = app->add_subcommand("run", "Run PROGRAM with allocation tracing");
  cmd->add_option("-o,--output", run->options.output_pattern,
                  "Trace path; %p is the pid, %e the executable's name "
                  "(default pagewaste.%e.%p.trace)");
  cmd->add_option("--backend", run->backend,
                  "preload (LD_PRELOAD shim), ptrace or bpf (static programs), or auto")
      ->check(CLI::IsMember({"auto", "preload", "ptrace", "bpf"}));
  cmd->add_flag("--observe-syscalls", run->options.observe_syscalls,
                "Also count every memory syscall with ptrace, to report those made "
                "outside allocator calls (preload backend; slower)");
  cmd->add_option("--sample", run->options.sample_bytes,
                  "Record malloc-family calls by sampling, one per BYTES requested on "
                  "average (e.g. 512K); calls that enter the kernel are always recorded, "
                  "and the report scales and states the estimate")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(uint64_t{2}, uint64_t{1} << 40));
  cmd->add_option("--ring-buffer", run->options.ring_bytes,
                  "The bpf backend's ring buffer (a power of two from 4K to 1G; default "
                  "64M); records it has no room for are counted as lost")
      ->transform(CLI::AsSizeValue(false))
      ->check(RingBufferSize());
  cmd->add_flag("--no-compress", run->no_compress,
                "Leave the traces uncompressed (by default they are rewritten with zstd "
                "once the program has exited)");
  cmd->add_flag("--no-symbolize", run->no_symbolize,
                "Leave the traces without their symbol section (by default the return "
                "addresses are symbolized once the program has exited and kept in the "
                "trace, so that it is reported without the binaries)");
  cmd->add_option("--check", run->check,
                  "Then hold the traces to the budget FILE, as pagewaste check --budget FILE "
                  "does (printed on stderr); the program's own failure wins over the check's");
  cmd->add_option("command", run->options.command, "PROGRAM [ARGS...] (after --)")->required();
  cmd->positionals_at_end();
  return cmd;
}

// run, then check its traces against --check's budget, if one is given.
int RunAndCheck(RunArgs* run) {
  for (format::Backend b : {format::Backend::kPreload, format::Backend::kPtrace, format::Backend::kBpf})
    if (run->backend == BackendName(b)) run->options.backend = b;
  run->options.compress = !run->no_compress;
  run->options.symbolize = !run->no_symbolize;
  if (run->check.empty()) return RunCommand(run->options);
  // A budget that cannot be used fails now, not after the whole suite.
  std::string budget_err;
  if (!ReadBudgetFile(run->check, nullptr, &budget_err)) {
    fmt::print(stderr, "pagewaste check: {}\n", budget_err);
    return exit_code::kUsage;
  }
  std::vector<std::string> traces;
  int code = RunCommand(run->options, &traces);
  if (traces.empty()) {
    fmt::print(stderr, "pagewaste: no trace to check\n");
    return code ? code : exit_code::kUsage;
  }
  CheckArgs args;
  args.budget = run->check;
  args.inputs = traces;
  int checked = CheckCommand(args, stderr);
  return code ? code : checked;
}

struct AttachArgs {
  AttachOptions options;
  bool no_compress = false;
  bool no_symbolize = false;
};

CLI::App* AddAttachCommand(CLI::App* app, AttachArgs* attach) {
  CLI::App* cmd = app->add_subcommand(
      "attach", "Record a running process (and what it forks) from now on, with BPF (root)");
  cmd->add_option("pid", attach->options.pid, "PID of the process")
      ->required()
      ->check(CLI::Range(1, std::numeric_limits<int>::max()));
  cmd->add_option("-o,--output", attach->options.output_pattern,
                  "Trace path; %p is the pid, %e the executable's name "
                  "(default pagewaste.%e.%p.trace)");
  cmd->add_option("--duration", attach->options.duration_seconds,
                  "Detach after SECONDS (default: at Ctrl-C, SIGTERM or the process's "
                  "exit)")
      ->check(CLI::Range(0.001, 1e7));
  cmd->add_option("--sample", attach->options.sample_bytes,
                  "Record the malloc family by sampling, one per BYTES requested on "
                  "average, as run's: less to record and unwind")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(uint64_t{2}, uint64_t{1} << 40));
  cmd->add_option("--malloc-calls", attach->options.malloc_calls,
                  "How the malloc family is seen: inject (a library loaded into the "
                  "process, a fraction of a microsecond a call; the default) or uprobes "
                  "(four traps per malloc/free pair, without touching the process)")
      ->check(CLI::IsMember({"inject", "uprobes"}));
  cmd->add_option("--ring-buffer", attach->options.ring_bytes, "As run's")
      ->transform(CLI::AsSizeValue(false))
      ->check(RingBufferSize());
  cmd->add_flag("--no-compress", attach->no_compress, "As run's");
  cmd->add_flag("--no-symbolize", attach->no_symbolize, "As run's");
  return cmd;
}

CLI::App* AddReportCommand(CLI::App* app, ReportArgs* report) {
  CLI::App* cmd = app->add_subcommand("report", "Report the waste recorded in traces");
  cmd->add_option("--format", report->format,
                  "text, json, folded (collapsed stacks for flame graphs), pprof "
                  "(gzipped profile.proto) or html (one self-contained page); the last "
                  "two with -o")
      ->check(CLI::IsMember({"text", "json", "folded", "pprof", "html"}));
  cmd->add_option("--metric", report->metric,
                  "folded: the figure of each stack; pprof: the sample type shown first "
                  "(default page_waste_bytes)");
  cmd->add_flag("--all-sites", report->all_sites,
                "JSON: list every call site (by default the first 500 by each ranking, "
                "the rest summed in other_sites)");
  cmd->add_option("--top", report->top, "Call sites to show (default 10 for text, 500 for json)")
      ->check(CLI::Range(size_t{1}, size_t{1000000000}));
  cmd->add_option("-o,--output", report->output, "Write the report to FILE");
  cmd->add_option("--timeline-samples", report->timeline_samples,
                  "About how many timeline samples (default 60)")
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--what-if", report->what_if,
                  "page-size=SIZE (bytes, or with K/M/G) or allocator=page|size-class|arena; "
                  "repeatable (default: 4K,16K,64K,2M and every model)");
  AddCodeOptions(cmd, &report->code);
  cmd->add_option("traces", report->traces, "TRACE...")->required();
  return cmd;
}

CLI::App* AddCheckCommand(CLI::App* app, CheckArgs* check) {
  CLI::App* cmd = app->add_subcommand(
      "check",
      "Hold traces or a JSON report to limits; exit 0 when they hold, 1 when one is "
      "exceeded, 2 for a usage or input error (docs/ci.md)");
  cmd->add_option("--budget", check->budget, "Limits and suppressions, a JSON file");
  cmd->add_option("--baseline", check->baseline,
                  "A report (JSON or trace) that relative limits are measured against");
  cmd->add_option("--max-allocations", check->max_allocations, "Whole run: at most N allocations");
  cmd->add_option("--max-page-waste", check->max_page_waste,
                  "Whole run: at most BYTES of page-rounding waste (K/M/G)");
  cmd->add_option("--max-syscalls", check->max_syscalls, "Whole run: at most N system calls");
  cmd->add_option("--max-peak-page-bytes", check->max_peak_page_bytes,
                  "Whole run: at most BYTES in pages at the peak (K/M/G)");
  cmd->add_option("--max-leaked-bytes", check->max_leaked_bytes,
                  "Whole run: at most BYTES live at exit (K/M/G)");
  cmd->add_flag("--allow-incomplete", check->allow_incomplete,
                "Do not fail on a trace that is not complete (lost events, cut short, "
                "corrupt); by default such a trace fails the check");
  cmd->add_option("--tolerance", check->tolerance,
                  "With --baseline and no relative limit in the budget: how much each "
                  "whole-run figure may grow, percent (default 5)")
      ->check(CLI::Range(0.0, 1e9));
  cmd->add_option("--allowance", check->allowance,
                  "And by how much at least, whatever the percentage (default 0)");
  AddCiOptions(cmd, &check->ci);
  cmd->add_option("inputs", check->inputs, "TRACE... or REPORT.json")->required();
  return cmd;
}

CLI::App* AddDiffCommand(CLI::App* app, DiffArgs* diff) {
  CLI::App* cmd = app->add_subcommand(
      "diff", "What changed between two runs, in total and per call site (traces or JSON reports)");
  cmd->add_option("--format", diff->format, "text or json")->check(CLI::IsMember({"text", "json"}));
  cmd->add_option("-o,--output", diff->output, "Write the diff to FILE");
  cmd->add_option("--fail-on-regression", diff->fail_on_regression,
                  "Exit 1 when allocations, waste, syscalls or the peak grew by more than PCT "
                  "percent")
      ->check(CLI::Range(0.0, 1e9));
  AddCiOptions(cmd, &diff->ci);
  cmd->add_option("base", diff->base, "BASE (trace or JSON report)")->required();
  cmd->add_option("new", diff->now, "NEW (trace or JSON report)")->required();
  return cmd;
}

CLI::App* AddDumpCommand(CLI::App* app, std::string* path) {
  CLI::App* cmd = app->add_subcommand("dump", "Print every record of a trace");
  cmd->add_option("trace", *path, "TRACE")->required();
  return cmd;
}

int DumpCommand(const std::string& path) {
  std::string err;
  int code = DumpTrace(path, stdout, &err);
  if (code != exit_code::kOk) fmt::print(stderr, "pagewaste: {}\n", err);
  return code;
}

// An exception with nowhere to go (thrown on another thread, or through a
// noexcept boundary) ends the same way as one that reaches RunCli: one line
// and exit 125, not an abort's 134.
void EndUncaughtExceptionsInOneLine() {
  std::set_terminate([] {
    const char* what = "pagewaste: internal error\n";
    try {
      if (std::exception_ptr e = std::current_exception()) std::rethrow_exception(e);
    } catch (const std::bad_alloc&) {
      what = "pagewaste: out of memory\n";
    } catch (...) {
    }
    ssize_t ignored = write(2, what, strlen(what));
    (void)ignored;
    _exit(exit_code::kInternal);
  });
}

}  // namespace

int RunCli(int argc, char** argv) {
  CLI::App app{"pagewaste: where a program's memory goes to waste in whole pages, and why it keeps calling the kernel"};
  app.require_subcommand(1);
  app.set_version_flag("--version", PAGEWASTE_VERSION);
  RunArgs run;
  AttachArgs attach;
  ReportArgs report;
  CheckArgs check;
  DiffArgs diff;
  std::string dump_path;
  CLI::App* run_cmd = AddRunCommand(&app, &run);
  CLI::App* attach_cmd = AddAttachCommand(&app, &attach);
  CLI::App* report_cmd = AddReportCommand(&app, &report);
  CLI::App* check_cmd = AddCheckCommand(&app, &check);
  CLI::App* diff_cmd = AddDiffCommand(&app, &diff);
  CLI::App* dump_cmd = AddDumpCommand(&app, &dump_path);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "pagewaste: {}\n", e.what());
    return exit_code::kUsage;
  }

  auto Dispatch = [&]() -> int {
    if (*attach_cmd) {
      attach.options.compress = !attach.no_compress;
      attach.options.symbolize = !attach.no_symbolize;
      return AttachCommand(attach.options);
    }
    if (*run_cmd) return RunAndCheck(&run);
    if (*report_cmd) return ReportCommand(report);
    if (*check_cmd) return CheckCommand(check);
    if (*diff_cmd) return DiffCommand(diff);
    if (*dump_cmd) return DumpCommand(dump_path);
    return exit_code::kUsage;
  };
  EndUncaughtExceptionsInOneLine();
  // The commands return their errors as values; an exception that still gets here
  // (memory exhausted, a library's surprise) ends in one line, not an abort.
  try {
    return Dispatch();
  } catch (const std::bad_alloc&) {
    fmt::print(stderr, "pagewaste: out of memory\n");
  } catch (const std::exception& e) {
    fmt::print(stderr, "pagewaste: internal error: {}\n", e.what());
  }
  return exit_code::kInternal;
}

}  // namespace pagewaste
