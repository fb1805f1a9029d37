// The check and diff commands: their arguments, the reports they load, and
// every output they write (ci_commands.h).
#include "ci_commands.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "ci/check.h"
#include "ci/ci_formats.h"
#include "ci/diff.h"
#include "exit_codes.h"
#include "io/output_file.h"
#include "io/byte_sizes.h"

namespace pagewaste {
namespace {

// Writes the outputs asked for (all are rendered: each is small beside the
// report they come from); false when one cannot be written.
bool WriteCiOutputs(const CiArgs& ci, const std::string& junit_text, const std::string& sarif_text,
                    const std::string& markdown_text, const std::string& github_text) {
  bool ok = true;
  if (!ci.junit.empty()) ok = WriteOutput(ci.junit, junit_text) && ok;
  if (!ci.sarif.empty()) ok = WriteOutput(ci.sarif, sarif_text) && ok;
  if (!ci.markdown.empty()) ok = WriteOutput(ci.markdown, markdown_text) && ok;
  if (ci.github) {
    ok = WriteOutput("", github_text) && ok;
    if (const char* summary = getenv("GITHUB_STEP_SUMMARY"); summary && *summary) {
      // Appended to, as the runner expects; never through a link.
      std::string text = markdown_text + "\n";
      int fd = open(summary, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
      bool written = fd >= 0 && write(fd, text.data(), text.size()) ==
                                    static_cast<ssize_t>(text.size());
      if (fd >= 0) written = close(fd) == 0 && written;
      if (!written) {
        fmt::print(stderr, "pagewaste: cannot append to {}: {}\n", summary, strerror(errno));
        ok = false;
      }
    }
  }
  return ok;
}

}  // namespace

bool ReadBudgetFile(const std::string& path, Budget* budget, std::string* err) {
  std::ifstream in(path);
  if (!in) {
    *err = fmt::format("cannot read the budget {}", path);
    return false;
  }
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Budget parsed;
  std::string why;
  if (!ParseBudget(text, budget ? budget : &parsed, &why)) {
    *err = fmt::format("budget {}: {}", path, why);
    return false;
  }
  return true;
}

CodeRules CodeRulesOf(const CodeArgs& args, const CodeRules* budget) {
  CodeRules rules;
  char cwd[4096];
  rules.source_root = !args.source_root.empty()              ? args.source_root
                      : getcwd(cwd, sizeof cwd) != nullptr ? std::string(cwd)
                                                           : std::string();
  if (!rules.source_root.empty() && rules.source_root[0] != '/' &&
      getcwd(cwd, sizeof cwd) != nullptr)
    rules.source_root = std::string(cwd) + "/" + rules.source_root;
  rules.own = args.own;
  rules.library = args.library;
  if (budget) {
    rules.own.insert(rules.own.end(), budget->own.begin(), budget->own.end());
    rules.library.insert(rules.library.end(), budget->library.begin(), budget->library.end());
  }
  return rules;
}

bool WriteOutput(const std::string& path, const std::string& text) {
  std::string err;
  if (WriteOutputFile(path, text, &err)) return true;
  fmt::print(stderr, "pagewaste: {}\n", err);
  return false;
}

bool CheckOutputs(const std::vector<std::string>& outputs, const std::vector<std::string>& inputs) {
  for (const std::string& output : outputs) {
    std::string err;
    if (!CheckOutputPath(output, inputs, &err)) {
      fmt::print(stderr, "pagewaste: {}\n", err);
      return false;
    }
  }
  return true;
}

int CheckCommand(const CheckArgs& args, FILE* text_out) {
  auto input_error = [](const std::string& message) {
    fmt::print(stderr, "pagewaste check: {}\n", message);
    return exit_code::kUsage;
  };
  Budget budget;
  if (!args.budget.empty()) {
    std::string err;
    if (!ReadBudgetFile(args.budget, &budget, &err)) return input_error(err);
  }
  budget.allow_incomplete |= args.allow_incomplete;
  struct Flag {
    const std::string& value;
    const char* option;
    const char* metric;
  };
  for (const Flag& flag :
       {Flag{args.max_allocations, "--max-allocations", "allocations"},
        Flag{args.max_page_waste, "--max-page-waste", "page_waste_bytes"},
        Flag{args.max_syscalls, "--max-syscalls", "syscalls"},
        Flag{args.max_peak_page_bytes, "--max-peak-page-bytes", "peak_page_bytes"},
        Flag{args.max_leaked_bytes, "--max-leaked-bytes", "leaked_bytes"}}) {
    if (flag.value.empty()) continue;
    uint64_t max;
    if (!ParseByteCount(flag.value, &max))
      return input_error(
          fmt::format("{} {}: expected a count or a size such as 64K", flag.option, flag.value));
    Limit limit;
    limit.metric = flag.metric;
    limit.max = max;
    budget.limits.push_back(limit);
  }
  CodeRules code = CodeRulesOf(args.ci.code, &budget.code);
  ReportDocument baseline;
  baseline.SetCodeRules(code);
  std::string err;
  if (!args.baseline.empty()) {
    if (!baseline.Load({args.baseline}, &err)) return input_error("baseline " + err);
    // A baseline and no relative limit: the five whole-run figures are
    // held to it.
    bool any_relative = std::any_of(budget.limits.begin(), budget.limits.end(),
                                    [](const Limit& l) { return l.relative; });
    uint64_t allowance;
    if (!ParseByteCount(args.allowance, &allowance))
      return input_error(
          fmt::format("--allowance {}: expected a count or a size such as 64K", args.allowance));
    if (!any_relative)
      for (const char* metric :
           {"allocations", "page_waste_bytes", "syscalls", "peak_page_bytes", "leaked_bytes"}) {
        Limit limit;
        limit.metric = metric;
        limit.relative = true;
        limit.percent = args.tolerance;
        limit.allowance = allowance;
        limit.name = std::string(metric) + " against the baseline";
        budget.limits.push_back(limit);
      }
  }
  if (budget.limits.empty())
    return input_error("nothing to check: give --budget FILE, --baseline BASE or a --max-* limit");
  std::vector<std::string> read = args.inputs;
  for (const std::string& path : {args.budget, args.baseline})
    if (!path.empty()) read.push_back(path);
  if (!CheckOutputs({args.ci.junit, args.ci.sarif, args.ci.markdown}, read))
    return exit_code::kUsage;
  ReportDocument report;
  report.SetCodeRules(code);
  if (!report.Load(args.inputs, &err)) return input_error(err);
  CheckResult result;
  if (!EvaluateBudget(report, args.baseline.empty() ? nullptr : &baseline, budget, &result, &err))
    return input_error(err);
  fmt::print(text_out, "{}", RenderCheckText(result));
  fflush(text_out);
  if (!WriteCiOutputs(args.ci, CheckJunit(result), CheckSarif(result),
                      CheckMarkdown(result), CheckGithub(result)))
    return exit_code::kUsage;
  return result.failed() ? exit_code::kLimitExceeded : exit_code::kOk;
}

int DiffCommand(const DiffArgs& args) {
  if (!CheckOutputs({args.output, args.ci.junit, args.ci.sarif, args.ci.markdown},
                    {args.base, args.now}))
    return exit_code::kUsage;
  CodeRules code = CodeRulesOf(args.ci.code);
  ReportDocument base, now;
  base.SetCodeRules(code);
  now.SetCodeRules(code);
  std::string err;
  if (!base.Load({args.base}, &err) || !now.Load({args.now}, &err)) {
    fmt::print(stderr, "pagewaste diff: {}\n", err);
    return exit_code::kUsage;
  }
  DiffResult diff = Diff(base, now, args.fail_on_regression);
  std::string text = args.format == "json" ? RenderDiffJson(diff) : RenderDiffText(diff);
  if (!WriteOutput(args.output, text)) return exit_code::kUsage;
  if (!WriteCiOutputs(args.ci, DiffJunit(diff), DiffSarif(diff), DiffMarkdown(diff),
                      DiffGithub(diff)))
    return exit_code::kUsage;
  return diff.regressions.empty() ? exit_code::kOk : exit_code::kLimitExceeded;
}

}  // namespace pagewaste
