// The symbol section `run` builds for a trace and appends to it, and the
// symbols a run shares (embed_symbols.h).
#include "embed_symbols.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "format/little_endian.h"
#include "elf/elf_headers.h"
#include "reader/symbol_section.h"
#include "symbolizer.h"
#include "reader/trace_reader.h"

namespace pagewaste {
namespace {

// The modules and the return addresses of a trace's stacks.
class Addresses : public RecordVisitor {
 public:
  void OnModule(const ModuleInfo& m) override { modules.push_back(m); }
  void OnStackNode(uint64_t, uint64_t, uint64_t ip) override {
    if (ip) ips.insert(ip);
  }
  bool WantsEvents() const override { return false; }
  std::vector<ModuleInfo> modules;
  std::set<uint64_t> ips;
};

}  // namespace

SymbolCache::SymbolCache() = default;
SymbolCache::~SymbolCache() = default;

void SymbolCache::SaveToStore() {
  if (!store) return;
  for (const auto& [path, build_id] : added) {
    auto of_module = symbolizers.find({path, build_id});
    if (of_module == symbolizers.end() || !of_module->second.symbolizer ||
        !of_module->second.symbolizer->warnings().empty())
      continue;
    ModuleFrames module_frames = store->Load({path, build_id});
    for (auto it = frames.lower_bound({path, build_id, 0});
         it != frames.end() && it->first.path == path && it->first.build_id == build_id; ++it)
      module_frames[it->first.offset] = it->second;
    store->Save({path, build_id}, module_frames);
  }
  added.clear();
}

bool BuildSymbolSection(const std::string& path, SymbolCache* cache, SymbolSection* section,
                        EmbedResult* result, std::string* err) {
  auto source = OpenFileSource(path, err);
  if (!source) return false;
  TraceReader reader(std::move(source));
  TraceHeader header;
  if (!reader.ReadHeader(&header, err)) return false;
  if (header.flags & format::kHeaderHasSymbols) {
    result->why = "already has its symbols";
    return true;
  }
  Addresses found;
  ReadResult read = reader.ReadRecords(&found);
  if (!read.has_end ||
      (read.status != TraceStatus::kComplete && read.status != TraceStatus::kIncomplete)) {
    result->why = "not complete";
    return true;
  }

  std::map<std::string, std::string> build_ids;
  for (const ModuleInfo& m : found.modules) {
    auto known = cache->build_ids.find(m.path);
    if (known == cache->build_ids.end())
      known = cache->build_ids.emplace(m.path, ptrace::ReadBuildId(m.path)).first;
    build_ids[m.path] = known->second;
  }
  // What earlier runs found for modules whose file is the traced one.
  for (const ModuleInfo& m : found.modules) {
    const std::string& build_id = build_ids[m.path];
    if (!cache->store || build_id.empty() || build_id != m.build_id ||
        !cache->looked_up.insert({m.path, build_id}).second)
      continue;
    for (auto& [offset, stored] : cache->store->Load({m.path, build_id}))
      cache->frames.emplace(SymbolCache::Key{m.path, build_id, offset}, std::move(stored));
  }
  // The module an address falls in, for the cache's key; the latest
  // snapshot that holds it, as the symbolizer takes it.
  auto module_of = [&](uint64_t ip) -> const ModuleInfo* {
    const ModuleInfo* found_in = nullptr;
    for (const ModuleInfo& m : found.modules)
      for (const ModuleSegment& seg : m.segments)
        if (ip >= seg.start && ip < seg.start + seg.length) found_in = &m;
    return found_in;
  };
  std::unique_ptr<Symbolizer> symbolizer;  // for addresses in no module
  std::vector<SymbolizedAddress> addresses;
  addresses.reserve(found.ips.size());
  for (uint64_t ip : found.ips) {
    SymbolizedAddress a;
    a.address = ip;
    const ModuleInfo* m = module_of(ip);
    SymbolCache::Key key;
    if (m) key = {m->path, build_ids[m->path], ip - m->load_bias};
    auto hit = m ? cache->frames.find(key) : cache->frames.end();
    if (hit != cache->frames.end()) {
      a.frames = hit->second;
    } else {
      const std::vector<Frame>* frames;
      if (m) {
        SymbolCache::ModuleSymbolizer& of_module = cache->symbolizers[{m->path, key.build_id}];
        if (!of_module.symbolizer) {
          of_module.load_bias = m->load_bias;
          of_module.symbolizer = std::make_unique<Symbolizer>(std::vector<ModuleInfo>{*m});
        }
        frames = &of_module.symbolizer->Symbolize(ip - m->load_bias + of_module.load_bias);
      } else {
        // In no module the trace names: its own map, for what it can say.
        if (!symbolizer) symbolizer = std::make_unique<Symbolizer>(found.modules);
        frames = &symbolizer->Symbolize(ip);
      }
      for (const Frame& f : *frames)
        a.frames.push_back({f.function, f.file, static_cast<uint32_t>(f.line > 0 ? f.line : 0),
                            f.module, f.module_offset, f.inlined});
      if (m) {
        cache->frames.emplace(key, a.frames);
        if (key.build_id == m->build_id && !key.build_id.empty())
          cache->added.insert({m->path, key.build_id});
      }
    }
    addresses.push_back(std::move(a));
  }
  std::vector<SymbolModule> modules;
  for (const auto& [module_path, build_id] : build_ids) modules.push_back({module_path, build_id});
  section->bytes = EncodeSymbolSection(modules, addresses);
  section->addresses = addresses.size();
  section->trace_end = read.bytes;
  return true;
}

bool AppendSymbolSection(const std::string& path, const SymbolSection& section,
                         uint64_t trace_end, EmbedResult* result, std::string* err) {
  // After the End record, where the file ends; then the header says so.
  int fd = open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (fd >= 0 && fstat(fd, &st) == 0 && static_cast<uint64_t>(st.st_size) != trace_end) {
    close(fd);
    result->why = "does not end at its end record";
    return true;
  }
  bool ok = fd >= 0 && pwrite(fd, section.bytes.data(), section.bytes.size(), st.st_size) ==
                           static_cast<ssize_t>(section.bytes.size());
  uint8_t flags[2];
  ok = ok && pread(fd, flags, sizeof flags, 10) == sizeof flags;
  PutLE(flags, GetLE(flags, 2) | format::kHeaderHasSymbols, 2);
  ok = ok && pwrite(fd, flags, sizeof flags, 10) == sizeof flags;
  if (!ok) *err = path + ": cannot add the symbol section: " + strerror(errno);
  if (fd >= 0) close(fd);
  if (!ok) return false;
  result->embedded = true;
  result->addresses = section.addresses;
  result->bytes = section.bytes.size();
  return true;
}

bool EmbedSymbols(const std::string& path, SymbolCache* cache, EmbedResult* result,
                  std::string* err) {
  SymbolSection section;
  if (!BuildSymbolSection(path, cache, &section, result, err)) return false;
  if (!result->why.empty()) return true;
  return AppendSymbolSection(path, section, section.trace_end, result, err);
}

}  // namespace pagewaste
