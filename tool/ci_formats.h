// What CI systems read, from `check` and `diff` (docs/ci.md): JUnit XML,
// SARIF 2.1.0, GitHub workflow commands, Markdown. Renderers only: every
// figure comes from the CheckResult or DiffResult.
#pragma once

#include <string>

#include "check.h"
#include "diff.h"

namespace pagewaste {

struct CiOptions {
  // Absolute source paths under this directory are written relative to it
  // (SARIF and annotations want paths from the repository's root).
  std::string source_root;
};

std::string CheckJunit(const CheckResult& check);
std::string CheckSarif(const CheckResult& check, const CiOptions& options);
std::string CheckGithub(const CheckResult& check, const CiOptions& options);
std::string CheckMarkdown(const CheckResult& check);

std::string DiffJunit(const DiffResult& diff);
std::string DiffSarif(const DiffResult& diff, const CiOptions& options);
std::string DiffGithub(const DiffResult& diff, const CiOptions& options);
std::string DiffMarkdown(const DiffResult& diff);

// Workflow-command escaping: of a message (%, CR, LF), and of a property
// value (those, and ':' and ',').
std::string EscapeGithubData(const std::string& text);
std::string EscapeGithubProperty(const std::string& text);

}  // namespace pagewaste
