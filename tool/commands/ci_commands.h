// `pagewaste check` and `pagewaste diff` (docs/ci.md): their arguments, and
// the commands that load the reports, evaluate and write every output.
#pragma once

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "ci/check.h"
#include "model/program_code.h"

namespace pagewaste {

// Writes text to path ("" or "-": stdout), safely (output_file.h); false,
// with a message, when it cannot.
bool WriteOutput(const std::string& path, const std::string& text);
// Whether every output path may be written (CheckOutputPath) beside the
// command's inputs; false, with a message naming the first that may not.
bool CheckOutputs(const std::vector<std::string>& outputs, const std::vector<std::string>& inputs);

// Which frames are the program's own code (program_code.h), as report,
// check and diff take it.
struct CodeArgs {
  std::string source_root;  // default: the current directory
  std::vector<std::string> own;
  std::vector<std::string> library;
};
// The rules, with the budget's patterns added (check).
CodeRules CodeRulesOf(const CodeArgs& args, const CodeRules* budget = nullptr);

// Where check and diff send what CI systems read.
struct CiArgs {
  std::string junit;
  std::string sarif;
  std::string markdown;
  bool github = false;
  CodeArgs code;
};

struct CheckArgs {
  std::string budget;
  std::string baseline;
  std::string max_allocations, max_page_waste, max_syscalls, max_peak_page_bytes, max_leaked_bytes;
  double tolerance = 5;
  std::string allowance = "0";
  bool allow_incomplete = false;
  std::vector<std::string> inputs;
  CiArgs ci;
};

// Reads and parses a budget file into *budget (null: only checks it);
// false with *err, one line naming the file and the field at fault.
bool ReadBudgetFile(const std::string& path, Budget* budget, std::string* err);

// 0 every limit holds, 1 one is exceeded, 2 a usage or input error. The
// check's text goes to text_out (run --check sends it to stderr).
int CheckCommand(const CheckArgs& args, FILE* text_out = stdout);

struct DiffArgs {
  std::string base;
  std::string now;
  std::string format = "text";
  std::string output;
  std::optional<double> fail_on_regression;
  CiArgs ci;
};

// 0, 1 when a total grew past --fail-on-regression, 2 for a usage or input
// error.
int DiffCommand(const DiffArgs& args);

}  // namespace pagewaste
