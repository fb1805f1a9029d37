// Where the call sites of a replay get their frames: the trace's own symbol
// section (run embeds one), or libdw reading the modules' files, whose
// debug information (libc's comes zlib-compressed, most of a small
// report's time) starts loading on a second thread at the first event,
// while the events replay. Each return address is symbolized and its
// frames classified (program_code.h) once, however many stacks hold it.
#pragma once

#include <cstdint>
#include <exception>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/program_code.h"
#include "model/report_model.h"
#include "symbols/symbolizer.h"
#include "reader/trace_reader.h"

namespace pagewaste {

// A stack node: (parent id, return address), by id.
using StackNodes = std::vector<std::pair<uint64_t, uint64_t>>;

class SiteFrames {
 public:
  SiteFrames() = default;
  ~SiteFrames();
  SiteFrames(const SiteFrames&) = delete;
  SiteFrames& operator=(const SiteFrames&) = delete;

  // An address of the trace's symbol section; with UseEmbedded, no binary
  // is read.
  void AddEmbedded(const SymbolizedAddress& address);
  void UseEmbedded() { use_embedded_ = true; }
  // Where and as whom the symbolizer reads module files (symbolizer.h).
  void UseModuleFiles(ModuleFiles files) { module_files_ = std::move(files); }
  bool embedded() const { return use_embedded_; }

  // Starts loading the modules' debug information on a second thread,
  // symbolizing the addresses known so far.
  void Warm(const std::vector<ModuleInfo>& modules, std::vector<uint64_t> addresses);

  // Gives each site of the lists its frames, innermost first, from the
  // stack nodes; the symbolizer's warnings (a module whose file is another
  // build) go to *warnings.
  void Give(std::initializer_list<std::vector<CallSite>*> lists, const StackNodes& nodes,
            const std::vector<ModuleInfo>& modules, const CodeRules& rules,
            std::vector<std::string>* warnings);

 private:
  std::vector<Frame> Embedded(uint64_t address) const;

  std::unordered_map<uint64_t, std::vector<Frame>> embedded_;
  bool use_embedded_ = false;
  ModuleFiles module_files_;
  std::thread warming_;
  std::unique_ptr<Symbolizer> warm_;  // written by warming_ until joined
  std::exception_ptr warm_failure_;   // what warming_ threw, for Give to rethrow
  size_t warm_modules_ = 0;
};

}  // namespace pagewaste
