// What CI systems read, from `check` and `diff` (docs/ci.md): JUnit XML,
// SARIF 2.1.0, GitHub workflow commands, Markdown. Renderers only: every
// figure comes from the CheckResult or DiffResult, and every path from a
// site's location, already relative to the source root (SiteLocation).
#pragma once

#include <string>

#include "check.h"
#include "diff.h"

namespace pagewaste {

std::string CheckJunit(const CheckResult& check);
std::string CheckSarif(const CheckResult& check);
std::string CheckGithub(const CheckResult& check);
std::string CheckMarkdown(const CheckResult& check);

std::string DiffJunit(const DiffResult& diff);
std::string DiffSarif(const DiffResult& diff);
std::string DiffGithub(const DiffResult& diff);
std::string DiffMarkdown(const DiffResult& diff);

// Workflow-command escaping: of a message (%, CR, LF), and of a property
// value (those, and ':' and ',').
std::string EscapeGithubData(const std::string& text);
std::string EscapeGithubProperty(const std::string& text);

}  // namespace pagewaste
