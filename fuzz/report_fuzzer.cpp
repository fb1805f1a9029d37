// libFuzzer entry for what `check` and `diff` read besides traces: a budget
// file and a saved JSON report, as "BUDGET\n---\nREPORT" (without the
// separator, the input is the report and a fixed budget is used). Either may
// come from anywhere (a baseline downloaded from another pipeline); what
// must hold is an error message or a result, never a crash. Seeded with
// the JSON reports of the trace fuzzer's seeds by `make fuzz`.
#include <cstddef>
#include <cstdint>
#include <string>

#include "ci/check.h"
#include "ci/ci_formats.h"
#include "ci/diff.h"
#include "render/report_document.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pagewaste;
  std::string input(reinterpret_cast<const char*>(data), size);
  std::string budget_text =
      R"({"limits": [{"metric": "waste_bytes", "max": 0},
                     {"metric": "syscalls.mmap", "site": {"function": "*a*"}, "max": 1},
                     {"metric": "peak_page_bytes", "max": 0},
                     {"metric": "allocations", "baseline": {"percent": 1, "allowance": 1}}],
          "suppressions": [{"site": {"location": "x.c:1"}, "reason": "fuzz"}]})";
  size_t split = input.find("\n---\n");
  if (split != std::string::npos) {
    budget_text = input.substr(0, split);
    input = input.substr(split + 5);
  }
  Budget budget;
  std::string err;
  if (!ParseBudget(budget_text, &budget, &err)) return 0;
  ReportDocument report;
  if (!report.Parse(input, "fuzz.json", &err)) return 0;
  CheckResult result;
  if (EvaluateBudget(report, &report, budget, &result, &err)) {
    RenderCheckText(result);
    CheckJunit(result);
    CheckSarif(result);
    CheckGithub(result);
    CheckMarkdown(result);
  }
  DiffResult diff = Diff(report, report, 1.0);
  RenderDiffText(diff);
  RenderDiffJson(diff);
  DiffSarif(diff);
  DiffJunit(diff);
  return 0;
}
