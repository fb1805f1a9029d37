// `pagewaste diff`: what changed between two reports, in total and by call site
// (diff.h).
#include "diff.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>

#include "check.h"
#include "model/program_code.h"

namespace pagewaste {
namespace {

using nlohmann::json;

const std::vector<std::string> kTotals = {"allocations", "waste_bytes", "syscalls",
                                          "peak_page_bytes"};

bool IsBytes(const std::string& metric) { return FindMetric(metric)->bytes(); }

struct Merged {
  SiteLocation where;
  Stack frames;
  std::vector<uint64_t> values;
  uint64_t waste = 0;  // the location kept is that of the part with the most
  bool located = false;
};

std::map<std::string, Merged> SitesByKey(const ReportDocument& doc) {
  std::map<std::string, Merged> out;
  for (const json& site : doc.call_sites()) {
    Stack frames = doc.Frames(site);
    Merged& m = out[SiteMatchKey(frames)];
    if (m.values.empty()) m.values.resize(DiffSiteMetrics().size());
    for (size_t i = 0; i < DiffSiteMetrics().size(); ++i)
      m.values[i] += MetricValue(site, DiffSiteMetrics()[i]);
    uint64_t waste = MetricValue(site, "waste_bytes");
    if (!m.located || waste > m.waste) {
      m.where = doc.Location(site);
      m.frames = std::move(frames);
      m.waste = waste;
      m.located = true;
    }
  }
  return out;
}

std::string Signed(int64_t v, bool bytes) {
  std::string digits = GroupDigits(static_cast<uint64_t>(v < 0 ? -v : v));
  return fmt::format("{}{}{}", v > 0 ? "+" : v < 0 ? "-" : "", digits, bytes ? " B" : "");
}

}  // namespace

const std::vector<std::string>& DiffSiteMetrics() {
  static const std::vector<std::string> metrics = {"allocations", "waste_bytes", "syscalls",
                                                   "page_bytes"};
  return metrics;
}

std::optional<double> DiffFigure::percent() const {
  if (base == 0) return now == 0 ? std::optional<double>(0.0) : std::nullopt;
  return 100.0 * static_cast<double>(change()) / static_cast<double>(base);
}

std::string ChangeText(const DiffFigure& f) {
  std::string out = Signed(f.change(), IsBytes(f.metric));
  if (f.change() == 0) return out;
  std::optional<double> pct = f.percent();
  return out + (pct ? fmt::format(" ({:+.2f}%)", *pct) : std::string(" (new)"));
}

DiffResult Diff(const ReportDocument& base, const ReportDocument& now,
                std::optional<double> fail_percent) {
  DiffResult d;
  d.base_name = base.name();
  d.new_name = now.name();
  d.fail_percent = fail_percent;
  for (const std::string& metric : kTotals) {
    DiffFigure f{metric, MetricValue(base.summary(), metric), MetricValue(now.summary(), metric)};
    if (fail_percent && f.now > f.base) {
      std::optional<double> pct = f.percent();
      if (!pct || *pct > *fail_percent) d.regressions.push_back(metric);
    }
    d.totals.push_back(f);
  }
  std::map<std::string, Merged> before = SitesByKey(base), after = SitesByKey(now);
  std::map<std::string, bool> keys;
  for (const auto& [key, m] : before) keys[key] = true;
  for (const auto& [key, m] : after) keys[key] = true;
  // Each site is labelled among the sites of both reports, so that a site
  // that is new beside an old one with the same innermost own frame is
  // named by the caller that tells them apart.
  std::vector<const Stack*> stacks;
  for (const auto& [key, unused] : keys) {
    auto a = after.find(key);
    stacks.push_back(a != after.end() ? &a->second.frames : &before.find(key)->second.frames);
  }
  std::vector<std::string> labels = SiteLabels(stacks);
  size_t index = 0;
  for (auto& [key, unused] : keys) {
    for (auto* side : {&before, &after})
      if (auto it = side->find(key); it != side->end()) it->second.where.label = labels[index];
    ++index;
  }
  const size_t n = DiffSiteMetrics().size();
  for (const auto& [key, unused] : keys) {
    auto b = before.find(key), a = after.find(key);
    std::vector<uint64_t> zeros(n);
    const std::vector<uint64_t>& bv = b == before.end() ? zeros : b->second.values;
    const std::vector<uint64_t>& av = a == after.end() ? zeros : a->second.values;
    if (bv == av) continue;
    DiffSite site;
    site.key = key;
    site.status = b == before.end() ? "added" : a == after.end() ? "removed" : "changed";
    site.where = a == after.end() ? b->second.where : a->second.where;
    for (size_t i = 0; i < n; ++i) site.figures.push_back({DiffSiteMetrics()[i], bv[i], av[i]});
    d.sites.push_back(std::move(site));
  }
  // The largest change in waste first, then in system calls, then by key.
  auto magnitude = [](const DiffSite& s) {
    auto abs = [](int64_t v) { return v < 0 ? -v : v; };
    return std::make_tuple(abs(s.Change("waste_bytes")), abs(s.Change("syscalls")),
                           abs(s.Change("allocations")));
  };
  std::stable_sort(d.sites.begin(), d.sites.end(), [&](const DiffSite& x, const DiffSite& y) {
    return magnitude(x) > magnitude(y);
  });
  return d;
}

std::string RenderDiffText(const DiffResult& d) {
  std::string out = fmt::format("pagewaste diff: {} -> {}\n", d.base_name, d.new_name);
  out += fmt::format("  {:<22} {:>18} {:>18}  {}\n", "", "base", "new", "change");
  for (const DiffFigure& f : d.totals)
    out += fmt::format("  {:<22} {:>18} {:>18}  {}\n", FindMetric(f.metric)->name,
                       FigureText(f.base, IsBytes(f.metric)), FigureText(f.now, IsBytes(f.metric)),
                       ChangeText(f));
  out += fmt::format("\nCall sites that changed: {}\n", GroupDigits(d.sites.size()));
  for (const DiffSite& s : d.sites) {
    out += fmt::format("  {:<8} {}  [{}]\n", s.status, s.where.Text(), s.key);
    std::string figures;
    for (const DiffFigure& f : s.figures)
      figures +=
          fmt::format("{}{} {} -> {} ({})", figures.empty() ? "" : "; ", f.metric,
                      FigureText(f.base, IsBytes(f.metric)), FigureText(f.now, IsBytes(f.metric)),
                      Signed(f.change(), IsBytes(f.metric)));
    out += fmt::format("           {}\n", figures);
  }
  if (d.fail_percent) {
    if (d.regressions.empty()) {
      out += fmt::format("\nok: no total grew by more than {}%\n", *d.fail_percent);
    } else {
      std::string names;
      for (const std::string& r : d.regressions) names += (names.empty() ? "" : ", ") + r;
      out += fmt::format("\nFAIL: grew by more than {}%: {}\n", *d.fail_percent, names);
    }
  }
  return out;
}

std::string RenderDiffJson(const DiffResult& d) {
  auto figure = [](const DiffFigure& f) {
    std::optional<double> pct = f.percent();
    return json{{"base", f.base},
                {"new", f.now},
                {"change", f.change()},
                {"percent", pct ? json(*pct) : json(nullptr)}};
  };
  json totals = json::object();
  for (const DiffFigure& f : d.totals) totals[f.metric] = figure(f);
  json sites = json::array();
  for (const DiffSite& s : d.sites) {
    json figures = json::object();
    for (const DiffFigure& f : s.figures) figures[f.metric] = figure(f);
    sites.push_back({{"status", s.status},
                     {"key", s.key},
                     {"label", s.where.label},
                     {"function", s.where.function},
                     {"file", s.where.file},
                     {"line", s.where.line},
                     {"module", s.where.module},
                     {"figures", figures}});
  }
  json j = {{"diff_version", 2},
            {"base", d.base_name},
            {"new", d.new_name},
            {"totals", totals},
            {"sites", sites},
            {"fail_on_regression_percent", d.fail_percent ? json(*d.fail_percent) : json(nullptr)},
            {"regressions", d.regressions}};
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace pagewaste
