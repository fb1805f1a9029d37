// A report as check and diff read it: the JSON document, validated field by
// field (report_document.h).
#include "report_document.h"

#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <unordered_set>
#include <utility>
#include <vector>

#include "render.h"
#include "replay/replay.h"

namespace pagewaste {
namespace {

using nlohmann::json;

bool StartsLikeJson(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char c = 0;
  while (in.get(c))
    if (!isspace(static_cast<unsigned char>(c))) return c == '{';
  return false;
}

bool IsUnsigned(const json& j) { return j.is_number_unsigned(); }

// "combined.call_sites[3].page_bytes: expected an unsigned integer"
std::string Expected(const std::string& path, const char* what) {
  return fmt::format("{}: expected {}", path, what);
}

bool CheckFigures(const json& object, const std::string& path, std::string* err) {
  if (!object.is_object()) {
    *err = Expected(path, "an object");
    return false;
  }
  if (!object.contains("syscalls") || !object["syscalls"].is_object()) {
    *err = Expected(path + ".syscalls", "an object of counts by kind");
    return false;
  }
  // The figures check and diff read: those a limit may name.
  for (const Metric& m : Metrics()) {
    const std::string& name = m.name;
    if (!m.for_limits) continue;
    if (m.whole_run_only() && path.find("call_sites") != std::string::npos) continue;
    const json* value;
    std::string field;
    if (name.rfind("syscalls", 0) == 0) {
      std::string kind = name == "syscalls" ? "total" : name.substr(9);
      field = path + ".syscalls." + kind;
      value = object["syscalls"].contains(kind) ? &object["syscalls"][kind] : nullptr;
    } else {
      field = path + "." + name;
      value = object.contains(name) ? &object[name] : nullptr;
    }
    if (!value || !IsUnsigned(*value)) {
      *err = Expected(field, value ? "an unsigned integer" : "a field (missing)");
      return false;
    }
  }
  return true;
}

// The fields of a site that no limit, diff or CI format reads: left out as
// the report is parsed, they would be most of a large report's memory.
const std::unordered_set<std::string>& UnreadFields() {
  static const std::unordered_set<std::string> fields = {
      "frees", "unmappings", "file_mappings", "remappings", "brk_calls", "memory_calls",
      "reservations", "reserved_bytes", "made_accessible_bytes", "failed_calls",
      "usable_bytes", "own_mappings", "own_requested_bytes", "waste_estimated", "syscall_ns",
      "syscalls_estimated", "estimated_calls", "calls", "syscalls_per_call", "syscall_pattern",
      "usage_measured_mappings", "resident_pages", "used_bytes", "used_bytes_estimated",
      "temporary_allocations", "sampling_error_bytes", "advice", "lifetimes"};
  return fields;
}

// The characters of a stream, read 64 KiB at a time: the parser's input
// (its own FILE* input takes a lock per character).
class StreamChars {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  StreamChars() = default;  // the end
  explicit StreamChars(FILE* in) : state_(std::make_shared<State>()) {
    state_->in = in;
    Fill();
  }
  reference operator*() const { return state_->buffer[state_->at]; }
  StreamChars& operator++() {
    if (++state_->at == state_->size) Fill();
    return *this;
  }
  bool operator==(const StreamChars& other) const { return AtEnd() == other.AtEnd(); }
  bool operator!=(const StreamChars& other) const { return !(*this == other); }

 private:
  struct State {
    FILE* in = nullptr;
    std::vector<char> buffer = std::vector<char>(64 << 10);
    size_t at = 0;
    size_t size = 0;
  };
  bool AtEnd() const { return !state_ || state_->size == 0; }
  void Fill() {
    state_->size = fread(state_->buffer.data(), 1, state_->buffer.size(), state_->in);
    state_->at = 0;
  }
  std::shared_ptr<State> state_;
};

// The report without UnreadFields; discarded if it does not parse.
template <typename... Input>
json ParseKept(Input&&... text) {
  return json::parse(
      std::forward<Input>(text)...,
      [](int, json::parse_event_t event, json& parsed) {
        return event != json::parse_event_t::key || !parsed.is_string() ||
               !UnreadFields().count(parsed.get_ref<const std::string&>());
      },
      false);
}

}  // namespace

uint64_t MetricValue(const json& object, const std::string& metric) {
  if (metric.rfind("syscalls", 0) == 0)
    return object["syscalls"][metric == "syscalls" ? "total" : metric.substr(9)].get<uint64_t>();
  return object[metric].get<uint64_t>();
}

std::string SiteLocation::Text() const {
  if (!label.empty()) return label;
  std::string where = file.empty() ? module : fmt::format("{}:{}", file, line);
  return fmt::format("{} ({})", function.empty() ? "??" : function, where);
}

void ReportDocument::SetCodeRules(const CodeRules& rules) { rules_ = rules; }

void ReportDocument::NameSites() {
  origin_ = CodeOrigin(rules_);
  std::vector<Frame> all;
  for (const json& f : doc_["frames"]) {
    Frame frame;
    frame.function = f["function"].get<std::string>();
    frame.file = f["file"].get<std::string>();
    all.push_back(std::move(frame));
  }
  origin_.Learn(all);
  std::vector<Stack> stacks;
  std::vector<std::string> keys;
  std::unordered_set<std::string> seen;
  auto add = [&](const json& site) {
    std::string key = site["key"].get<std::string>();
    if (!seen.insert(key).second) return;
    keys.push_back(key);
    stacks.push_back(Frames(site));
  };
  for (const json& site : call_sites()) add(site);
  for (const json* site : PeakSites()) add(*site);
  std::vector<const Stack*> pointers;
  for (const Stack& stack : stacks) pointers.push_back(&stack);
  std::vector<std::string> labels = SiteLabels(pointers);
  labels_.clear();
  for (size_t i = 0; i < keys.size(); ++i) labels_[keys[i]] = labels[i];
}

bool ReportDocument::Load(const std::vector<std::string>& paths, std::string* err) {
  name_ = paths.size() == 1 ? paths[0] : fmt::format("{} traces", paths.size());
  if (paths.size() == 1 && StartsLikeJson(paths[0])) {
    std::ifstream in(paths[0]);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return Parse(text, paths[0], err);
  }
  // Every site: site limits and suppressions must see them all.
  RenderOptions render;
  render.process_sites = false;
  std::unique_ptr<ReportWriter> writer = JsonWriter(render);
  CombinedView combined;
  for (const std::string& path : paths) {
    if (StartsLikeJson(path)) {
      *err = fmt::format("{}: a JSON report goes alone, not with other inputs", path);
      return false;
    }
    Report report;
    ReplayOptions options;
    options.code = rules_;
    if (!ReplayTrace(path, options, &report, err)) return false;
    if (report.process.status != TraceStatus::kComplete)
      fmt::print(stderr, "pagewaste: {}: trace is {} ({}); using what it holds\n", path,
                 TraceStatusName(report.process.status), report.process.status_message);
    writer->AddProcess(report);
    combined.Add(std::move(report));
  }
  // The document's text goes through a scratch file: a suite's combined
  // view is tens of MB of text, which the parsed document need not sit beside.
  Spool text;
  if (!writer->Finish(combined.Finish(), &text, err) || !text.ok(err)) return false;
  if (FILE* in = text.Reopen()) {
    doc_ = ParseKept(StreamChars(in), StreamChars());
    bool read_whole = !ferror(in);
    fclose(in);
    if (!read_whole) {
      *err = text.error();
      return false;
    }
  } else if (!text.ok(err)) {
    return false;
  } else {
    doc_ = ParseKept(text.memory());
  }
  NameSites();
  return true;
}

bool ReportDocument::Parse(const std::string& text, const std::string& name, std::string* err) {
  name_ = name;
  doc_ = ParseKept(text);
  if (doc_.is_discarded()) {
    *err = fmt::format("{}: not a JSON report (it does not parse)", name);
    return false;
  }
  std::string why;
  if (!Validate(&why)) {
    *err = fmt::format("{}: {}", name, why);
    return false;
  }
  NameSites();
  return true;
}

bool ReportDocument::Validate(std::string* err) const {
  if (!doc_.is_object()) {
    *err = Expected("the top", "an object");
    return false;
  }
  // Version 3 added labels and library frames, which are made again here
  // by this run's rules: a version 2 report reads the same. Version 4 added
  // what the traces lost (combined.lost): none in an older report.
  if (!doc_.contains("schema_version") || !doc_["schema_version"].is_number_integer() ||
      doc_["schema_version"] < 2 || doc_["schema_version"] > kSchemaVersion) {
    *err = fmt::format(
        "schema_version: expected 2 to {} (made by `pagewaste report --format json` of this "
        "version)", kSchemaVersion);
    return false;
  }
  const json& frames = doc_.value("frames", json());
  if (!frames.is_array()) {
    *err = Expected("frames", "an array");
    return false;
  }
  for (size_t i = 0; i < frames.size(); ++i) {
    const json& f = frames[i];
    std::string path = fmt::format("frames[{}]", i);
    if (!f.is_object()) {
      *err = Expected(path, "an object");
      return false;
    }
    for (const char* field : {"function", "file", "module"})
      if (!f.contains(field) || !f[field].is_string()) {
        *err = Expected(path + "." + field, "a string");
        return false;
      }
    if (!f.contains("line") || !f["line"].is_number_integer()) {
      *err = Expected(path + ".line", "an integer");
      return false;
    }
    if (f.contains("module_offset") && !IsUnsigned(f["module_offset"])) {
      *err = Expected(path + ".module_offset", "an unsigned integer");
      return false;
    }
    if (f.contains("inlined") && !f["inlined"].is_boolean()) {
      *err = Expected(path + ".inlined", "true or false");
      return false;
    }
  }
  const json& stacks = doc_.value("stacks", json());
  if (!stacks.is_array()) {
    *err = Expected("stacks", "an array");
    return false;
  }
  for (size_t i = 0; i < stacks.size(); ++i) {
    const json& n = stacks[i];
    std::string path = fmt::format("stacks[{}]", i);
    if (!n.is_array() || n.size() != 2 || !IsUnsigned(n[0]) || !n[1].is_number_integer() ||
        n[0].get<uint64_t>() >= frames.size() || n[1].get<int64_t>() < -1 ||
        n[1].get<int64_t>() >= static_cast<int64_t>(i)) {
      *err = Expected(path, "[frame, parent]: a frame index, and -1 or an earlier node");
      return false;
    }
  }
  const json& combined = doc_.value("combined", json());
  if (!combined.is_object()) {
    *err = Expected("combined", "an object");
    return false;
  }
  if (!CheckFigures(combined.value("summary", json()), "combined.summary", err)) return false;
  const json& sites = combined.value("call_sites", json());
  if (!sites.is_array()) {
    *err = Expected("combined.call_sites", "an array");
    return false;
  }
  for (size_t i = 0; i < sites.size(); ++i) {
    std::string path = fmt::format("combined.call_sites[{}]", i);
    if (!CheckFigures(sites[i], path, err)) return false;
    if (!sites[i].contains("key") || !sites[i]["key"].is_string()) {
      *err = Expected(path + ".key", "a string");
      return false;
    }
    const json& stack = sites[i].value("stack", json(-1));
    if (!stack.is_null() && (!IsUnsigned(stack) || stack.get<uint64_t>() >= stacks.size())) {
      *err = Expected(path + ".stack", "null or an index into stacks");
      return false;
    }
  }
  return true;
}

json StackFrames(const json& doc, const json& stack) {
  json frames = json::array();
  if (stack.is_null()) return frames;
  // Each node names its frame and the next outer node.
  for (int64_t node = stack.get<int64_t>(); node >= 0; node = doc["stacks"][node][1].get<int64_t>())
    frames.push_back(doc["frames"][doc["stacks"][node][0].get<size_t>()]);
  return frames;
}

Stack ReportDocument::Frames(const json& site) const {
  std::vector<Frame> out;
  for (const json& f : StackFrames(doc_, site["stack"])) {
    Frame frame;
    frame.function = f["function"].get<std::string>();
    frame.file = f["file"].get<std::string>();
    frame.line = f["line"].get<int>();
    frame.module = f["module"].get<std::string>();
    frame.module_offset = f.value("module_offset", uint64_t{0});
    frame.address = f.value("address", uint64_t{0});
    frame.inlined = f.value("inlined", false);
    out.push_back(std::move(frame));
  }
  origin_.Classify(&out);
  return Stack(out);
}

std::vector<const json*> ReportDocument::PeakSites() const {
  std::vector<const json*> out;
  // Each step is checked: a saved report's optional parts may be anything.
  const json& combined = doc_["combined"];
  if (!combined.contains("peak") || !combined["peak"].is_object()) return out;
  const json& peak = combined["peak"];
  if (!peak.contains("processes") || !peak["processes"].is_array() || peak["processes"].empty())
    return out;
  const json& holder = peak["processes"][0];
  if (!holder.is_object() || !holder.contains("process") || !holder["process"].is_number_unsigned())
    return out;
  size_t index = holder["process"].get<size_t>();
  if (!doc_.contains("processes") || !doc_["processes"].is_array() ||
      index >= doc_["processes"].size())
    return out;
  const json& process = doc_["processes"][index];
  if (!process.is_object() || !process.contains("peak") || !process["peak"].is_object() ||
      !process["peak"].contains("sites") || !process["peak"]["sites"].is_array())
    return out;
  for (const json& site : process["peak"]["sites"]) {
    // Sites named here are used only when they are whole.
    if (!site.is_object() || !site.contains("key") || !site["key"].is_string() ||
        !site.contains("page_bytes") || !site["page_bytes"].is_number_unsigned() ||
        !site.contains("stack"))
      continue;
    const json& stack = site["stack"];
    if (!stack.is_null() &&
        (!stack.is_number_unsigned() || stack.get<size_t>() >= doc_["stacks"].size()))
      continue;
    out.push_back(&site);
  }
  return out;
}

SiteLocation ReportDocument::Location(const json& site) const {
  Stack frames = Frames(site);
  size_t at = LocationIndex(frames);
  if (at == SIZE_MAX) return {};
  const Frame& pick = frames[at];
  std::string module = pick.module.substr(pick.module.rfind('/') + 1);
  if (pick.file.empty() && !module.empty()) module += fmt::format("+{:#x}", pick.module_offset);
  auto label = labels_.find(site["key"].get<std::string>());
  return {pick.function, std::string(pick.shown_file()), pick.line, module,
          label == labels_.end() ? FrameText(pick) : label->second};
}

}  // namespace pagewaste
