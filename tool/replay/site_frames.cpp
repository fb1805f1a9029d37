// The frames of a replay's call sites (site_frames.h).
#include "site_frames.h"

namespace pagewaste {

SiteFrames::~SiteFrames() {
  if (warming_.joinable()) warming_.join();
}

void SiteFrames::AddEmbedded(const SymbolizedAddress& a) {
  std::vector<Frame>& frames = embedded_[a.address];
  frames.clear();
  for (const SymbolFrame& f : a.frames) {
    Frame frame;
    frame.address = a.address;
    frame.function = f.function;
    frame.file = f.file;
    frame.line = static_cast<int>(f.line);
    frame.module = f.module;
    frame.module_offset = f.module_offset;
    frame.inlined = f.inlined;
    frames.push_back(std::move(frame));
  }
}

std::vector<Frame> SiteFrames::Embedded(uint64_t address) const {
  auto it = embedded_.find(address);
  if (it != embedded_.end()) return it->second;
  std::vector<Frame> unknown(1);  // an address the section does not hold
  unknown[0].address = address;
  return unknown;
}

void SiteFrames::Warm(const std::vector<ModuleInfo>& modules, std::vector<uint64_t> addresses) {
  warm_modules_ = modules.size();
  warming_ = std::thread([this, modules, addresses = std::move(addresses)] {
    // An exception here (memory exhausted) is the replay's: Give rethrows it.
    try {
      warm_ = std::make_unique<Symbolizer>(modules, module_files_);
      for (uint64_t address : addresses) warm_->Symbolize(address);
    } catch (...) {
      warm_failure_ = std::current_exception();
    }
  });
}

void SiteFrames::Give(std::initializer_list<std::vector<CallSite>*> lists, const StackNodes& nodes,
                      const std::vector<ModuleInfo>& modules, const CodeRules& rules,
                      std::vector<std::string>* warnings) {
  Symbolizer* symbolizer = nullptr;
  if (!use_embedded_) {
    if (warming_.joinable()) warming_.join();
    if (warm_failure_) std::rethrow_exception(std::exchange(warm_failure_, nullptr));
    // The warmed symbolizer knows every module unless some came later.
    if (!warm_ || warm_modules_ != modules.size())
      warm_ = std::make_unique<Symbolizer>(modules, module_files_);
    symbolizer = warm_.get();
  }
  // Stack node -> 1 + index into unique's frames (0: not seen yet).
  std::vector<uint32_t> slot(nodes.size(), 0);
  std::unordered_map<uint64_t, uint32_t> by_address;
  std::vector<std::vector<Frame>> unique;
  for (auto* sites : lists)
    for (const CallSite& site : *sites)
      for (uint64_t id = site.stack_id; id && id < nodes.size() && !slot[id];
           id = nodes[id].first) {
        uint64_t address = nodes[id].second;
        auto [it, fresh] = by_address.emplace(address, unique.size() + 1);
        if (fresh)
          unique.push_back(symbolizer ? symbolizer->Symbolize(address) : Embedded(address));
        slot[id] = it->second;
      }
  CodeOrigin origin(rules);
  for (const std::vector<Frame>& frames : unique) origin.Learn(frames);
  // Classified, each address's frames go to the pool; the sites hold them there.
  std::vector<std::vector<const Frame*>> pooled(unique.size());
  for (size_t i = 0; i < unique.size(); ++i) {
    origin.Classify(&unique[i]);
    for (const Frame& f : unique[i]) pooled[i].push_back(PooledFrame(f));
  }
  unique.clear();
  for (auto* sites : lists)
    for (CallSite& site : *sites)
      for (uint64_t id = site.stack_id; id && id < nodes.size(); id = nodes[id].first)
        site.frames.append(pooled[slot[id] - 1]);
  if (symbolizer) *warnings = symbolizer->warnings();
}

}  // namespace pagewaste
