// `pagewaste check`: a budget read and validated, and a report held to its
// limits (check.h).
#include "check.h"

#include <fmt/format.h>
#include <fnmatch.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "io/byte_sizes.h"

namespace pagewaste {
namespace {

using nlohmann::json;

bool Glob(const std::string& pattern, const std::string& text) {
  return fnmatch(pattern.c_str(), text.c_str(), 0) == 0;
}

std::string BaseName(const std::string& path) { return path.substr(path.rfind('/') + 1); }

// file matches "budget.c", "programs/budget.c" or a glob over the whole path.
bool FileMatches(const std::string& pattern, const std::string& file) {
  if (file.empty()) return false;
  if (file == pattern) return true;
  if (file.size() > pattern.size() &&
      file.compare(file.size() - pattern.size(), pattern.size(), pattern) == 0 &&
      file[file.size() - pattern.size() - 1] == '/')
    return true;
  return Glob(pattern, file);
}

// "budget.c:16" -> budget.c and 16; "budget.c" -> budget.c and 0 (any
// line). False for a line that is not a number a frame could have.
bool SplitLocation(const std::string& location, std::string* file, int* line) {
  *file = location;
  *line = 0;
  size_t colon = location.rfind(':');
  if (colon == std::string::npos || colon + 1 == location.size() ||
      !std::all_of(location.begin() + static_cast<ptrdiff_t>(colon) + 1, location.end(),
                   [](char c) { return isdigit(static_cast<unsigned char>(c)); }))
    return true;
  *file = location.substr(0, colon);
  auto [end, error] =
      std::from_chars(location.data() + colon + 1, location.data() + location.size(), *line);
  return error == std::errc() && *line > 0;
}

bool FrameMatches(const SitePattern& p, const Frame& f) {
  if (!p.function.empty() && !Glob(p.function, f.function)) return false;
  if (!p.module.empty() && !Glob(p.module, f.module) && !Glob(p.module, BaseName(f.module)))
    return false;
  if (!p.file.empty() && (!FileMatches(p.file, f.file) || (p.line && f.line != p.line)))
    return false;
  return true;
}

bool SiteMatches(const SitePattern& p, const Stack& frames) {
  return std::any_of(frames.begin(), frames.end(),
                     [&](const Frame& f) { return FrameMatches(p, f); });
}

// Reads the budget's JSON with the path of each field, for messages.
class BudgetReader {
 public:
  explicit BudgetReader(std::string* err) : err_(err) {}

  bool Fail(const std::string& path, const std::string& what) {
    *err_ = fmt::format("{}: {}", path, what);
    return false;
  }

  bool OnlyFields(const json& j, const std::string& path,
                  std::initializer_list<const char*> allowed) {
    if (!j.is_object()) return Fail(path, "expected an object");
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& key = it.key();
      if (std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return key == a; }))
        return Fail(path + "." + key, "not a field of a budget here (a typo?)");
    }
    return true;
  }

  bool String(const json& j, const std::string& path, std::string* out) {
    if (!j.is_string()) return Fail(path, "expected a string");
    *out = j.get<std::string>();
    return true;
  }

  // A count, or a size as a string ("64K").
  bool Amount(const json& j, const std::string& path, uint64_t* out) {
    if (j.is_number_unsigned()) {
      *out = j.get<uint64_t>();
      return true;
    }
    if (j.is_string() && ParseByteCount(j.get<std::string>(), out)) return true;
    return Fail(path, "expected a count or a size such as 64K");
  }

  bool Pattern(const json& j, const std::string& path, SitePattern* out) {
    if (!OnlyFields(j, path, {"function", "location", "module"})) return false;
    if (j.contains("function") && !String(j["function"], path + ".function", &out->function))
      return false;
    if (j.contains("location") && !String(j["location"], path + ".location", &out->location))
      return false;
    if (!out->location.empty() && !SplitLocation(out->location, &out->file, &out->line))
      return Fail(path + ".location", "expected FILE or FILE:LINE, with a line from 1");
    if (j.contains("module") && !String(j["module"], path + ".module", &out->module)) return false;
    if (out->function.empty() && out->location.empty() && out->module.empty())
      return Fail(path, "expected one of function, location, module");
    return true;
  }

  bool ReadLimit(const json& j, const std::string& path, Limit* out) {
    if (!OnlyFields(j, path, {"name", "metric", "site", "max", "baseline"})) return false;
    if (!j.contains("metric")) return Fail(path + ".metric", "missing");
    if (!String(j["metric"], path + ".metric", &out->metric)) return false;
    const Metric* metric = FindMetric(out->metric);
    if (!metric || !metric->for_limits) {
      std::string names = MetricNames([](const Metric& m) { return m.for_limits; });
      return Fail(path + ".metric",
                  fmt::format("{} metric \"{}\" (one of {})", metric ? "no limit may name the" :
                              "unknown", out->metric, names));
    }
    if (j.contains("name") && !String(j["name"], path + ".name", &out->name)) return false;
    if (j.contains("site")) {
      if (metric->whole_run_only())
        return Fail(path + ".site", out->metric + " holds for the whole run only");
      out->site.emplace();
      if (!Pattern(j["site"], path + ".site", &*out->site)) return false;
    }
    if (j.contains("max") == j.contains("baseline"))
      return Fail(path, "expected one of max (absolute) and baseline (relative)");
    if (j.contains("max")) {
      uint64_t max;
      if (!Amount(j["max"], path + ".max", &max)) return false;
      out->max = max;
      return true;
    }
    const json& base = j["baseline"];
    std::string bpath = path + ".baseline";
    if (!OnlyFields(base, bpath, {"percent", "allowance"})) return false;
    out->relative = true;
    if (base.contains("percent")) {
      if (!base["percent"].is_number() || base["percent"].get<double>() < 0)
        return Fail(bpath + ".percent", "expected a number, 0 or more");
      out->percent = base["percent"].get<double>();
    }
    if (base.contains("allowance") &&
        !Amount(base["allowance"], bpath + ".allowance", &out->allowance))
      return false;
    return true;
  }

 private:
  std::string* err_;
};

std::string DefaultName(const Limit& limit) {
  return limit.name.empty() ? limit.metric + (limit.site ? " at " + limit.site->Text()
                                                         : std::string(" (whole run)"))
                            : limit.name;
}

// The sites of a report with their frames, and whether a suppression took
// them out.
struct Site {
  const json* figures;
  Stack frames;
  int suppressed_by = -1;
};

std::vector<Site> SitesOf(const ReportDocument& doc, const Budget& budget) {
  std::vector<Site> sites;
  for (const json& s : doc.call_sites()) {
    Site site{&s, doc.Frames(s)};
    for (size_t i = 0; i < budget.suppressions.size() && site.suppressed_by < 0; ++i)
      if (SiteMatches(budget.suppressions[i].site, site.frames))
        site.suppressed_by = static_cast<int>(i);
    sites.push_back(std::move(site));
  }
  return sites;
}

// The figure a limit holds to: a whole-run figure less what suppressed
// sites made, or the sum over the sites its pattern matches.
uint64_t ValueOf(const ReportDocument& doc, const std::vector<Site>& sites, const Limit& limit,
                 std::vector<SiteFigure>* contributors) {
  uint64_t value = limit.site ? 0 : MetricValue(doc.summary(), limit.metric);
  if (FindMetric(limit.metric)->whole_run_only()) return value;  // no site sums to a peak
  for (const Site& site : sites) {
    uint64_t v = MetricValue(*site.figures, limit.metric);
    if (site.suppressed_by >= 0) {
      if (!limit.site) value -= std::min(value, v);
      continue;
    }
    if (limit.site && !SiteMatches(*limit.site, site.frames)) continue;
    if (limit.site) value += v;
    if (v && contributors)
      contributors->push_back(
          {(*site.figures)["key"].get<std::string>(), doc.Location(*site.figures), v});
  }
  return value;
}

// For the peaks: the sites that held the most pages at the peak.
std::vector<SiteFigure> PeakHolders(const ReportDocument& doc) {
  std::vector<SiteFigure> out;
  for (const json* site : doc.PeakSites())
    out.push_back({(*site)["key"].get<std::string>(), doc.Location(*site),
                   (*site)["page_bytes"].get<uint64_t>()});
  return out;
}

}  // namespace

std::string SitePattern::Text() const {
  std::vector<std::string> parts;
  if (!function.empty()) parts.push_back("function " + function);
  if (!location.empty()) parts.push_back("location " + location);
  if (!module.empty()) parts.push_back("module " + module);
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? ", " : "") + parts[i];
  return out;
}

bool ParseBudget(const std::string& text, Budget* budget, std::string* err) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    *err = "not JSON (it does not parse)";
    return false;
  }
  BudgetReader read(err);
  if (!read.OnlyFields(j, "budget", {"limits", "suppressions", "code", "allow_incomplete"}))
    return false;
  if (j.contains("allow_incomplete")) {
    if (!j["allow_incomplete"].is_boolean()) return read.Fail("allow_incomplete", "expected true or false");
    budget->allow_incomplete = j["allow_incomplete"].get<bool>();
  }
  if (j.contains("code")) {
    const json& code = j["code"];
    if (!read.OnlyFields(code, "code", {"own", "library"})) return false;
    for (auto [field, into] : {std::pair{"own", &budget->code.own},
                               std::pair{"library", &budget->code.library}}) {
      if (!code.contains(field)) continue;
      std::string path = std::string("code.") + field;
      if (!code[field].is_array()) return read.Fail(path, "expected an array of patterns");
      for (size_t i = 0; i < code[field].size(); ++i) {
        std::string pattern;
        if (!read.String(code[field][i], fmt::format("{}[{}]", path, i), &pattern)) return false;
        into->push_back(pattern);
      }
    }
  }
  if (j.contains("limits")) {
    if (!j["limits"].is_array()) return read.Fail("limits", "expected an array");
    for (size_t i = 0; i < j["limits"].size(); ++i) {
      Limit limit;
      if (!read.ReadLimit(j["limits"][i], fmt::format("limits[{}]", i), &limit)) return false;
      budget->limits.push_back(std::move(limit));
    }
  }
  if (j.contains("suppressions")) {
    if (!j["suppressions"].is_array()) return read.Fail("suppressions", "expected an array");
    for (size_t i = 0; i < j["suppressions"].size(); ++i) {
      const json& s = j["suppressions"][i];
      std::string path = fmt::format("suppressions[{}]", i);
      Suppression suppression;
      if (!read.OnlyFields(s, path, {"site", "reason"})) return false;
      if (!s.contains("site")) return read.Fail(path + ".site", "missing");
      if (!read.Pattern(s["site"], path + ".site", &suppression.site)) return false;
      // A suppression says why: the next reader of the budget needs to know.
      if (!s.contains("reason"))
        return read.Fail(path + ".reason", "missing (say why it is accepted)");
      if (!read.String(s["reason"], path + ".reason", &suppression.reason)) return false;
      budget->suppressions.push_back(std::move(suppression));
    }
  }
  return true;
}

size_t CheckResult::failed() const {
  return static_cast<size_t>(
      std::count_if(limits.begin(), limits.end(), [](const LimitResult& l) { return !l.passed; }));
}

bool EvaluateBudget(const ReportDocument& report, const ReportDocument* baseline,
                    const Budget& budget, CheckResult* result, std::string* err) {
  result->input = report.name();
  std::vector<Site> sites = SitesOf(report, budget);
  std::vector<Site> base_sites;
  if (baseline) base_sites = SitesOf(*baseline, budget);
  // Traces that are not complete fail the check before any limit: the
  // figures below are not the whole run's.
  const nlohmann::json& lost = report.combined().value("lost", nlohmann::json::object());
  if (uint64_t incomplete = lost.value("incomplete_traces", uint64_t{0})) {
    LimitResult r;
    r.name = fmt::format("incomplete traces ({} and {} lost{})",
                         Counted(lost.value("events", uint64_t{0}), "event", "events"),
                         FigureText(lost.value("bytes", uint64_t{0}), true),
                         budget.allow_incomplete ? "; allowed by the budget" : "");
    r.metric = "incomplete_traces";
    r.scope = "whole run";
    r.value = incomplete;
    r.threshold = budget.allow_incomplete ? incomplete : 0;
    r.passed = budget.allow_incomplete;
    result->limits.push_back(std::move(r));
  }
  for (const Limit& limit : budget.limits) {
    const Metric& metric = *FindMetric(limit.metric);
    LimitResult r;
    r.name = DefaultName(limit);
    r.metric = limit.metric;
    r.scope = limit.site ? limit.site->Text() : "whole run";
    r.bytes = metric.bytes();
    r.value = ValueOf(report, sites, limit, &r.sites);
    if (limit.relative) {
      if (!baseline) {
        *err = fmt::format("limit {} is relative to a baseline: give --baseline BASE", r.name);
        return false;
      }
      uint64_t base = ValueOf(*baseline, base_sites, limit, nullptr);
      r.baseline = base;
      // Saturating: a budget may allow any percentage or allowance.
      double percent_of = std::ceil(static_cast<double>(base) * limit.percent / 100.0);
      uint64_t by_percent = percent_of >= 1.8e19 ? UINT64_MAX : static_cast<uint64_t>(percent_of);
      uint64_t grow = std::max(by_percent, limit.allowance);
      r.threshold = base > UINT64_MAX - grow ? UINT64_MAX : base + grow;
    } else {
      r.threshold = *limit.max;
    }
    r.passed = r.value <= r.threshold;
    std::stable_sort(r.sites.begin(), r.sites.end(),
                     [](const SiteFigure& a, const SiteFigure& b) { return a.value > b.value; });
    if (r.sites.size() > 20) r.sites.resize(20);
    // A peak has no sites that sum to it: those that held the pages then.
    if (limit.metric == "peak_page_bytes") r.sites = PeakHolders(report);
    result->limits.push_back(std::move(r));
  }
  for (size_t i = 0; i < budget.suppressions.size(); ++i) {
    SuppressionResult s{budget.suppressions[i].site.Text(), budget.suppressions[i].reason, {}};
    for (const Site& site : sites)
      if (site.suppressed_by == static_cast<int>(i))
        s.sites.push_back({(*site.figures)["key"].get<std::string>(),
                           report.Location(*site.figures),
                           MetricValue(*site.figures, "waste_bytes")});
    result->suppressions.push_back(std::move(s));
  }
  return true;
}

std::string FigureText(uint64_t value, bool bytes) {
  return GroupDigits(value) + (bytes ? " B" : "");
}

std::string RenderCheckText(const CheckResult& result) {
  std::string out;
  size_t failed = result.failed();
  out += fmt::format("pagewaste check: {}: {} of {} exceeded ({})\n", failed ? "FAIL" : "ok",
                     GroupDigits(failed), Counted(result.limits.size(), "limit", "limits"),
                     result.input);
  for (const LimitResult& l : result.limits) {
    std::string against =
        l.baseline ? fmt::format(" (baseline {})", FigureText(*l.baseline, l.bytes)) : "";
    out += fmt::format("  {:<4} {}: {} {} limit {}{}\n", l.passed ? "ok" : "FAIL", l.name,
                       FigureText(l.value, l.bytes), l.passed ? "<=" : ">",
                       FigureText(l.threshold, l.bytes), against);
    if (l.passed) continue;
    size_t shown = 0;
    for (const SiteFigure& s : l.sites) {
      if (++shown > 5) {
        out += fmt::format("         ... {} more\n", Counted(l.sites.size() - 5, "site", "sites"));
        break;
      }
      out += fmt::format("       {:>16}  {}  [{}]\n", FigureText(s.value, l.bytes), s.where.Text(),
                         s.key);
    }
  }
  for (const SuppressionResult& s : result.suppressions)
    out += fmt::format("  suppressed {}: {} ({})\n", s.pattern,
                       Counted(s.sites.size(), "site", "sites"), s.reason);
  return out;
}

}  // namespace pagewaste
