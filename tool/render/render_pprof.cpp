// pprof's profile.proto, gzip-compressed: one sample per call site (every
// process's sites merged, as in the combined view), with the figures no
// other profiler has as sample types. Locations carry a Line per inlined
// frame; mappings carry the modules' build ids, so that pprof can find the
// binaries again; the comments name each process and its command line.
#include <zlib.h>

#include <fmt/format.h>

#include <map>
#include <tuple>

#include "profile.pb.h"
#include "render.h"

namespace pagewaste {
namespace {

namespace pb = perftools::profiles;

// The sample types: the metrics that have one (metrics.h), in their order.
const char* UnitName(MetricUnit unit) {
  switch (unit) {
    case MetricUnit::kBytes: return "bytes";
    case MetricUnit::kNanoseconds: return "nanoseconds";
    default: return "count";
  }
}

std::vector<const Metric*> SampleTypes() {
  std::vector<const Metric*> out;
  for (const Metric& m : Metrics())
    if (!m.pprof_type.empty()) out.push_back(&m);
  return out;
}

class ProfileBuilder {
 public:
  // build_ids: the modules' build ids (hex) by path, for their mappings.
  explicit ProfileBuilder(std::map<std::string, std::string> build_ids)
      : build_ids_(std::move(build_ids)) {
    String("");
  }

  int64_t String(const std::string& s) {
    auto [it, fresh] = strings_.emplace(s, profile_.string_table_size());
    if (fresh) profile_.add_string_table(ValidUtf8(s));
    return static_cast<int64_t>(it->second);
  }

  uint64_t Mapping(const std::string& path) {
    auto [it, fresh] = mappings_.emplace(path, profile_.mapping_size() + 1);
    if (fresh) {
      pb::Mapping* m = profile_.add_mapping();
      m->set_id(it->second);
      m->set_filename(String(path));
      auto id = build_ids_.find(path);
      m->set_build_id(String(id == build_ids_.end() ? "" : id->second));
      m->set_has_functions(true);
      m->set_has_filenames(true);
      m->set_has_line_numbers(true);
      m->set_has_inline_frames(true);
    }
    return it->second;
  }

  uint64_t Function(const Frame& f) {
    std::string name = FrameName(f);
    auto [it, fresh] =
        functions_.emplace(std::make_pair(name, f.file), profile_.function_size() + 1);
    if (fresh) {
      pb::Function* fn = profile_.add_function();
      fn->set_id(it->second);
      fn->set_name(String(name));
      fn->set_system_name(String(name));
      fn->set_filename(String(f.file));
    }
    return it->second;
  }

  // One location per return address: the frames inlined at it, innermost
  // first, then the function they were inlined into. Addresses are module
  // offsets (each mapping starts at 0), the same in every run.
  uint64_t Location(const Frame* first, const Frame* last) {
    uint64_t mapping = last->module.empty() ? 0 : Mapping(last->module);
    uint64_t address = last->module.empty() ? last->address : last->module_offset;
    std::vector<std::pair<std::string, int>> lines;
    for (const Frame* f = first; f <= last; ++f) lines.emplace_back(FrameName(*f), f->line);
    auto [it, fresh] =
        locations_.emplace(std::make_tuple(mapping, address, lines), profile_.location_size() + 1);
    if (fresh) {
      pb::Location* loc = profile_.add_location();
      loc->set_id(it->second);
      loc->set_mapping_id(mapping);
      loc->set_address(address);
      for (const Frame* f = first; f <= last; ++f) {
        pb::Line* line = loc->add_line();
        line->set_function_id(Function(*f));
        line->set_line(f->line);
      }
      if (mapping) {
        pb::Mapping* m = profile_.mutable_mapping(static_cast<int>(mapping - 1));
        m->set_memory_limit(std::max<uint64_t>(m->memory_limit(), address + 1));
      }
    }
    return it->second;
  }

  pb::Profile& profile() { return profile_; }

 private:
  std::map<std::string, std::string> build_ids_;
  pb::Profile profile_;
  std::map<std::string, size_t> strings_;
  std::map<std::string, uint64_t> mappings_;
  std::map<std::pair<std::string, std::string>, uint64_t> functions_;
  std::map<std::tuple<uint64_t, uint64_t, std::vector<std::pair<std::string, int>>>, uint64_t>
      locations_;
};

bool Gzip(const std::string& in, std::string* out) {
  z_stream z{};
  // 15 + 16: a gzip header and trailer, as pprof expects.
  if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return false;
  out->resize(deflateBound(&z, in.size()) + 64);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out->data());
  z.avail_out = static_cast<uInt>(out->size());
  int rc = deflate(&z, Z_FINISH);
  out->resize(z.total_out);
  deflateEnd(&z);
  return rc == Z_STREAM_END;
}

}  // namespace

bool PprofMetric(const std::string& metric, std::string* sample_type) {
  for (const Metric* t : SampleTypes())
    if (metric == t->name || metric == t->pprof_type) {
      *sample_type = t->pprof_type;
      return true;
    }
  return false;
}

namespace {

std::string Pprof(const CombinedReport& combined, const std::string& default_metric) {
  // The frames of a merged site are those of one process: its modules'
  // build ids are looked up among every process's.
  ProfileBuilder b(combined.module_build_ids);
  pb::Profile& p = b.profile();
  const std::vector<const Metric*> sample_types = SampleTypes();
  for (const Metric* t : sample_types) {
    pb::ValueType* v = p.add_sample_type();
    v->set_type(b.String(t->pprof_type));
    v->set_unit(b.String(UnitName(t->unit)));
  }
  std::string default_type = "page_waste";
  PprofMetric(default_metric, &default_type);
  p.set_default_sample_type(b.String(default_type));
  // The executables' mappings first: pprof names the profile after the first.
  for (const Report& r : combined.each)
    if (combined.module_build_ids.count(r.process.header.exe)) b.Mapping(r.process.header.exe);
  for (const CallSite& site : combined.call_sites) {
    pb::Sample* sample = p.add_sample();
    for (size_t i = 0; i < site.frames.size();) {
      size_t last = i;
      while (last + 1 < site.frames.size() && site.frames[last].inlined) ++last;
      sample->add_location_id(b.Location(&site.frames[i], &site.frames[last]));
      i = last + 1;
    }
    for (const Metric* t : sample_types) sample->add_value(static_cast<int64_t>(t->of_site(site)));
    // The site's name in every other output, for -tagfocus and -tags.
    pb::Label* label = sample->add_label();
    label->set_key(b.String("site"));
    label->set_str(b.String(site.label));
  }
  for (const Report& r : combined.each) {
    const ProcessInfo& info = r.process;
    std::string argv;
    for (const std::string& a : info.header.argv) argv += (argv.empty() ? "" : " ") + a;
    p.add_comment(b.String(
        fmt::format("pagewaste: pid {} {}: {}", info.header.process.pid, info.header.exe, argv)));
  }
  if (!combined.each.empty()) {
    const ProcessInfo& first = combined.each[0].process;
    p.set_time_nanos(static_cast<int64_t>(first.header.process.start_realtime_ns));
    p.set_duration_nanos(static_cast<int64_t>(first.duration_ns));
  }
  pb::ValueType* period = p.mutable_period_type();
  period->set_type(b.String("page_waste"));
  period->set_unit(b.String("bytes"));
  p.set_period(1);
  std::string raw, out;
  if (!p.SerializeToString(&raw) || !Gzip(raw, &out)) return {};
  return out;
}

class PprofReportWriter : public ReportWriter {
 public:
  explicit PprofReportWriter(std::string metric) : metric_(std::move(metric)) {}
  bool Finish(const CombinedReport& combined, TextSink* out, std::string* err) override {
    std::string profile = Pprof(combined, metric_);
    if (profile.empty()) {
      *err = "the pprof profile could not be encoded";
      return false;
    }
    out->Write(profile);
    return true;
  }

 private:
  std::string metric_;
};

}  // namespace

std::unique_ptr<ReportWriter> PprofWriter(const std::string& default_metric) {
  return std::make_unique<PprofReportWriter>(default_metric);
}

}  // namespace pagewaste
