// check's and diff's results as JUnit XML, SARIF, GitHub workflow commands and
// Markdown (ci_formats.h).
#include "ci_formats.h"

#include <fmt/format.h>
#include <algorithm>
#include <nlohmann/json.hpp>

namespace pagewaste {
namespace {

using json = nlohmann::ordered_json;

std::string Xml(const std::string& text) {
  std::string out;
  for (char c : ValidUtf8(text)) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        // XML 1.0 allows no control characters but tab, LF and CR.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r')
          out += '?';
        else
          out += c;
    }
  }
  return out;
}

// One suite of test cases (already written, escaped) in a JUnit file.
std::string JunitDocument(const std::string& suite, size_t tests, size_t failures,
                          const std::string& cases) {
  return fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<testsuites name=\"pagewaste\" tests=\"{0}\" failures=\"{1}\" errors=\"0\">\n"
      "  <testsuite name=\"{2}\" tests=\"{0}\" failures=\"{1}\" errors=\"0\" "
      "skipped=\"0\">\n{3}  </testsuite>\n</testsuites>\n",
      tests, failures, Xml(suite), cases);
}

std::string Markdown(const std::string& text) {
  std::string out;
  for (char c : ValidUtf8(text)) {
    if (c == '|' || c == '*' || c == '_' || c == '`' || c == '<' || c == '>' || c == '[' ||
        c == ']')
      out += '\\';
    out += c;
  }
  return out;
}

std::string LimitLine(const LimitResult& l) {
  return fmt::format("{}: {} {} limit {}{}", l.name, FigureText(l.value, l.bytes),
                     l.passed ? "<=" : ">", FigureText(l.threshold, l.bytes),
                     l.baseline ? " (baseline " + FigureText(*l.baseline, l.bytes) + ")" : "");
}

std::string Dump(const json& j) {
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

// SARIF's rule for a metric: stable ids, the same in every run.
json Rule(const std::string& id, const std::string& name, const std::string& text) {
  return {{"id", id},
          {"name", name},
          {"shortDescription", {{"text", text}}},
          {"fullDescription", {{"text", text}}},
          {"help",
           {{"text",
             "See docs/ci.md of pagewaste: the limit, its figure, and the call sites that "
             "caused it."},
            {"markdown",
             "See `docs/ci.md` of pagewaste: the limit, its figure, and the call "
             "sites that caused it."}}},
          {"defaultConfiguration", {{"level", "error"}}},
          {"properties",
           {{"tags", json::array({"memory", "performance", "pagewaste"})},
            {"precision", "very-high"},
            {"problem.severity", "error"}}}};
}

json SarifResult(const std::string& rule_id, size_t rule_index, const std::string& message,
                 const SiteLocation& where, const std::string& fingerprint) {
  json location;
  if (!where.file.empty()) {
    location = {{"physicalLocation",
                 {{"artifactLocation", {{"uri", where.file}}},
                  {"region", {{"startLine", where.line > 0 ? where.line : 1}}}}}};
  } else {
    // No source line (no debug information): the module stands for it.
    location = {{"physicalLocation",
                 {{"artifactLocation", {{"uri", where.module.empty() ? "unknown" : where.module}}},
                  {"region", {{"startLine", 1}}}}}};
  }
  location["message"] = {{"text", where.Text()}};
  return {{"ruleId", rule_id},
          {"ruleIndex", rule_index},
          {"level", "error"},
          {"message", {{"text", message}}},
          {"locations", json::array({location})},
          {"partialFingerprints", {{"pagewasteSite/v1", fingerprint}}}};
}

json SarifLog(json rules, json results) {
  json driver = {{"name", "pagewaste"},
                 {"version", PAGEWASTE_VERSION},
                 {"semanticVersion", PAGEWASTE_VERSION},
                 {"informationUri", "https://pagewaste.dev"},
                 {"rules", std::move(rules)}};
  return {{"$schema", "https://json.schemastore.org/sarif-2.1.0.json"},
          {"version", "2.1.0"},
          {"runs", json::array({{{"tool", {{"driver", driver}}},
                                 {"results", std::move(results)},
                                 {"columnKind", "utf16CodeUnits"}}})}};
}

std::string Annotation(const char* level, const SiteLocation& where, const std::string& title,
                       const std::string& message) {
  std::string props;
  if (!where.file.empty())
    props = fmt::format(" file={},line={},", EscapeGithubProperty(where.file),
                        where.line > 0 ? where.line : 1);
  else
    props = " ";
  return fmt::format("::{}{}title={}::{}\n", level, props, EscapeGithubProperty(title),
                     EscapeGithubData(message));
}

}  // namespace

std::string EscapeGithubData(const std::string& text) {
  std::string out;
  for (char c : ValidUtf8(text)) {
    if (c == '%')
      out += "%25";
    else if (c == '\r')
      out += "%0D";
    else if (c == '\n')
      out += "%0A";
    else
      out += c;
  }
  return out;
}

std::string EscapeGithubProperty(const std::string& text) {
  std::string out;
  for (char c : EscapeGithubData(text)) {
    if (c == ':')
      out += "%3A";
    else if (c == ',')
      out += "%2C";
    else
      out += c;
  }
  return out;
}

std::string CheckJunit(const CheckResult& check) {
  std::string cases;
  for (const LimitResult& l : check.limits) {
    cases += fmt::format("    <testcase classname=\"pagewaste.check\" name=\"{}\" time=\"0\">\n",
                         Xml(l.name));
    if (!l.passed) {
      std::string detail;
      for (const SiteFigure& s : l.sites)
        detail +=
            fmt::format("{}  {}  [{}]\n", FigureText(s.value, l.bytes), s.where.Text(), s.key);
      cases += fmt::format("      <failure type=\"limit exceeded\" message=\"{}\">{}</failure>\n",
                           Xml(LimitLine(l)), Xml(detail));
    } else {
      cases += fmt::format("      <system-out>{}</system-out>\n", Xml(LimitLine(l)));
    }
    cases += "    </testcase>\n";
  }
  return JunitDocument("pagewaste check " + check.input, check.limits.size(), check.failed(),
                       cases);
}

namespace {

// The sites of a limit that share one line of code (their first own
// frame), summed: CI systems show one finding per line, and a line that
// several callers reach is one place to change.
struct LineGroup {
  SiteLocation where;  // of the first (largest) site
  uint64_t value = 0;
  std::vector<const SiteFigure*> sites;
};

std::vector<LineGroup> ByLine(const std::vector<SiteFigure>& sites) {
  std::vector<LineGroup> groups;
  for (const SiteFigure& s : sites) {
    auto same = [&](const LineGroup& g) {
      return g.where.file == s.where.file && g.where.line == s.where.line &&
             g.where.module == s.where.module && g.where.function == s.where.function;
    };
    auto it = std::find_if(groups.begin(), groups.end(), same);
    if (it == groups.end()) it = groups.insert(groups.end(), LineGroup{s.where, 0, {}});
    it->value += s.value;
    it->sites.push_back(&s);
  }
  return groups;
}

// "This call site, page_alloc ← make_tag (objs.c:12): 40,880 B", or for
// several: "3 call sites at this line: 1,234 B: A 1,000 B; B 200 B; C 34 B".
std::string GroupText(const LineGroup& g, bool bytes) {
  if (g.sites.size() == 1)
    return fmt::format("This call site, {}: {}", g.sites[0]->where.Text(),
                       FigureText(g.value, bytes));
  std::string parts;
  for (const SiteFigure* s : g.sites)
    parts += fmt::format("{}{} {}", parts.empty() ? "" : "; ", s->where.Text(),
                         FigureText(s->value, bytes));
  return fmt::format("{} call sites at this line: {}: {}", GroupDigits(g.sites.size()),
                     FigureText(g.value, bytes), parts);
}

}  // namespace

std::string CheckSarif(const CheckResult& check) {
  json rules = json::array(), results = json::array();
  std::vector<std::string> rule_ids;
  for (const LimitResult& l : check.limits) {
    if (l.passed) continue;
    std::string id = "pagewaste/" + l.metric;
    auto it = std::find(rule_ids.begin(), rule_ids.end(), id);
    size_t index = static_cast<size_t>(it - rule_ids.begin());
    if (it == rule_ids.end()) {
      rule_ids.push_back(id);
      rules.push_back(Rule(id, l.metric, fmt::format("A limit on {} was exceeded", l.metric)));
    }
    for (const LineGroup& g : ByLine(l.sites))
      results.push_back(SarifResult(id, index,
                                    fmt::format("{}. {}.", LimitLine(l), GroupText(g, l.bytes)),
                                    g.where, g.sites[0]->key + "/" + l.metric));
  }
  return Dump(SarifLog(rules, results));
}

std::string CheckGithub(const CheckResult& check) {
  std::string out;
  for (const LimitResult& l : check.limits) {
    if (l.passed) continue;
    if (l.sites.empty())
      out += Annotation("error", {}, "pagewaste: " + l.name, LimitLine(l));
    for (const LineGroup& g : ByLine(l.sites))
      out += Annotation("error", g.where, "pagewaste: " + l.name,
                        fmt::format("{}. {}.", LimitLine(l), GroupText(g, l.bytes)));
  }
  for (const SuppressionResult& s : check.suppressions)
    out +=
        Annotation("notice", {}, "pagewaste: suppressed",
                   fmt::format("{} ({}): {}", s.pattern, Counted(s.sites.size(), "site", "sites"), s.reason));
  return out;
}

std::string CheckMarkdown(const CheckResult& check) {
  size_t failed = check.failed();
  std::string out =
      fmt::format("### pagewaste check: {}\n\n{} of {} limits exceeded on `{}`.\n\n",
                  failed ? "failed" : "passed", failed, check.limits.size(), check.input);
  out += "| | limit | value | maximum |\n|---|---|---:|---:|\n";
  for (const LimitResult& l : check.limits)
    out += fmt::format("| {} | {} | {} | {}{} |\n", l.passed ? "ok" : "**FAIL**", Markdown(l.name),
                       FigureText(l.value, l.bytes), FigureText(l.threshold, l.bytes),
                       l.baseline ? " (baseline " + FigureText(*l.baseline, l.bytes) + ")" : "");
  for (const LimitResult& l : check.limits) {
    if (l.passed || l.sites.empty()) continue;
    out += fmt::format("\n**{}**, by call site:\n\n", Markdown(l.name));
    for (const SiteFigure& s : l.sites)
      out += fmt::format("- {}: {}\n", FigureText(s.value, l.bytes), Markdown(s.where.Text()));
  }
  if (!check.suppressions.empty()) out += "\nSuppressed:\n\n";
  for (const SuppressionResult& s : check.suppressions)
    out += fmt::format("- {} ({}): {}\n", Markdown(s.pattern), Counted(s.sites.size(), "site", "sites"),
                       Markdown(s.reason));
  return out;
}

std::string DiffJunit(const DiffResult& diff) {
  std::string cases;
  for (const DiffFigure& f : diff.totals) {
    bool failed = std::find(diff.regressions.begin(), diff.regressions.end(), f.metric) !=
                  diff.regressions.end();
    std::string line =
        fmt::format("{}: {} -> {} ({})", f.metric, FigureText(f.base, FindMetric(f.metric)->bytes()),
                    FigureText(f.now, FindMetric(f.metric)->bytes()), ChangeText(f));
    cases += fmt::format("    <testcase classname=\"pagewaste.diff\" name=\"{}\" time=\"0\">\n",
                         Xml(f.metric));
    if (failed)
      cases += fmt::format("      <failure type=\"regression\" message=\"{}\"/>\n",
                           Xml(fmt::format("{}: grew by more than {}%", line, *diff.fail_percent)));
    else
      cases += fmt::format("      <system-out>{}</system-out>\n", Xml(line));
    cases += "    </testcase>\n";
  }
  return JunitDocument("pagewaste diff", diff.totals.size(), diff.regressions.size(), cases);
}

namespace {

// A site whose waste or system calls grew: what diff's SARIF and
// annotations point at.
bool Grew(const DiffSite& s) { return s.Change("waste_bytes") > 0 || s.Change("syscalls") > 0; }

std::string SiteChange(const DiffSite& s) {
  std::string out;
  for (const DiffFigure& f : s.figures)
    out += fmt::format("{}{} {}", out.empty() ? "" : ", ", f.metric, ChangeText(f));
  return out;
}

}  // namespace

std::string DiffSarif(const DiffResult& diff) {
  json rules = json::array({Rule("pagewaste/diff/added-site", "added-site",
                                 "A call site that wastes pages or enters the kernel is new"),
                            Rule("pagewaste/diff/grown-site", "grown-site",
                                 "A call site wastes more pages or makes more system calls")});
  json results = json::array();
  for (const DiffSite& s : diff.sites) {
    if (!Grew(s)) continue;
    bool added = s.status == "added";
    results.push_back(SarifResult(
        added ? "pagewaste/diff/added-site" : "pagewaste/diff/grown-site", added ? 0 : 1,
        fmt::format("{} call site: {}", added ? "New" : "Grown", SiteChange(s)), s.where, s.key));
  }
  return Dump(SarifLog(rules, results));
}

std::string DiffGithub(const DiffResult& diff) {
  std::string out;
  bool failing = !diff.regressions.empty();
  for (const DiffSite& s : diff.sites)
    if (Grew(s))
      out += Annotation(failing ? "error" : "warning", s.where,
                        fmt::format("pagewaste: {} call site", s.status), SiteChange(s));
  return out;
}

std::string DiffMarkdown(const DiffResult& diff) {
  std::string out =
      fmt::format("### pagewaste diff\n\n`{}` → `{}`\n\n", diff.base_name, diff.new_name);
  out += "| | base | new | change |\n|---|---:|---:|---:|\n";
  for (const DiffFigure& f : diff.totals)
    out += fmt::format("| {} | {} | {} | {} |\n", f.metric,
                       FigureText(f.base, FindMetric(f.metric)->bytes()),
                       FigureText(f.now, FindMetric(f.metric)->bytes()), ChangeText(f));
  out += fmt::format("\n{} changed.\n", Counted(diff.sites.size(), "call site", "call sites"));
  for (const DiffSite& s : diff.sites)
    out += fmt::format("- {} {}: {}\n", s.status, Markdown(s.where.Text()), SiteChange(s));
  if (diff.fail_percent)
    out += diff.regressions.empty()
               ? fmt::format("\nNo total grew by more than {}%.\n", *diff.fail_percent)
               : fmt::format("\n**Regression**: grew by more than {}%.\n", *diff.fail_percent);
  return out;
}

}  // namespace pagewaste
