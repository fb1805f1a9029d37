// `pagewaste run`, once the program has exited: symbolizes every return
// address a trace's stacks hold, with the binaries that are there now, and
// appends the result to the trace as its symbol section (symbol_section.h),
// so that the trace is reported anywhere, later, without them.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <set>
#include <tuple>
#include <vector>

#include "reader/symbol_section.h"
#include "symbol_store.h"

namespace pagewaste {

class Symbolizer;

// What earlier traces of the same run found, by module file and offset,
// and each module's symbolizer: the processes of a run share their
// libraries (and often their program), and loading a library's debug
// information is most of the cost (libdw inflating the C library's
// compressed sections: tens of milliseconds), so each module file is
// loaded once per run, whatever the number of processes.
class SymbolCache {
 public:
  SymbolCache();
  ~SymbolCache();
  SymbolCache(const SymbolCache&) = delete;
  SymbolCache& operator=(const SymbolCache&) = delete;

  struct Key {
    std::string path, build_id;
    uint64_t offset;
    bool operator<(const Key& o) const {
      return std::tie(path, build_id, offset) < std::tie(o.path, o.build_id, o.offset);
    }
  };
  std::map<Key, std::vector<SymbolFrame>> frames;
  std::map<std::string, std::string> build_ids;  // by path
  // One module's symbolizer, with the module where the first trace that
  // needed it had it (an address of another process's is moved there).
  struct ModuleSymbolizer {
    uint64_t load_bias = 0;
    std::unique_ptr<Symbolizer> symbolizer;
  };
  std::map<std::pair<std::string, std::string>, ModuleSymbolizer> symbolizers;  // path, build id

  // Symbols kept between runs (none: the run's own only). Each module is
  // looked up there once per run; what the run adds is written back by
  // SaveToStore, for the modules whose file on disk is the traced one.
  std::unique_ptr<SymbolStore> store;
  std::set<std::pair<std::string, std::string>> looked_up;  // path, build id
  std::set<std::pair<std::string, std::string>> added;
  // Writes the modules the run added frames to; a module whose symbolizer
  // could not read it as traced (its warnings) is left out.
  void SaveToStore();
};

struct EmbedResult {
  bool embedded = false;
  size_t addresses = 0;
  size_t bytes = 0;  // of the section
  std::string why;   // when not embedded and not an error: why not
};

// A trace's symbol section, before it is appended.
struct SymbolSection {
  std::vector<uint8_t> bytes;  // whole chunks (symbol_section.h)
  size_t addresses = 0;
  uint64_t trace_end = 0;  // where the trace it was made from ends
};

// False with *err on an I/O error. A trace without its End record, or one
// that already has a section, is left as it is (result->why).
bool EmbedSymbols(const std::string& path, SymbolCache* cache, EmbedResult* result,
                  std::string* err);

// The two halves of EmbedSymbols, for `run`, which builds the section from
// the plain trace while another thread compresses it. BuildSymbolSection:
// false with *err on an I/O error; true with result->why (and no section)
// for a trace to leave as it is. AppendSymbolSection: appends it to the
// trace at path, which must end at trace_end (its End record's chunk, or
// the compressed chunk that holds it), and says so in its header.
bool BuildSymbolSection(const std::string& path, SymbolCache* cache, SymbolSection* section,
                        EmbedResult* result, std::string* err);
bool AppendSymbolSection(const std::string& path, const SymbolSection& section,
                         uint64_t trace_end, EmbedResult* result, std::string* err);

}  // namespace pagewaste
