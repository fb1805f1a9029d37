// `pagewaste run`, once the program has exited: symbolizes every return
// address a trace's stacks hold, with the binaries that are there now, and
// appends the result to the trace as its symbol section (symbol_section.h),
// so that the trace is reported anywhere, later, without them.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "symbol_section.h"

namespace pagewaste {

// What earlier traces of the same run found, by module file and offset:
// the processes of a run share their libraries (and often their program),
// and loading a library's debug information is most of the cost, so each is
// loaded at most once per run for the addresses seen before.
class SymbolCache {
 public:
  struct Key {
    std::string path, build_id;
    uint64_t offset;
    bool operator<(const Key& o) const {
      return std::tie(path, build_id, offset) < std::tie(o.path, o.build_id, o.offset);
    }
  };
  std::map<Key, std::vector<SymbolFrame>> frames;
  std::map<std::string, std::string> build_ids;  // by path
};

struct EmbedResult {
  bool embedded = false;
  size_t addresses = 0;
  size_t bytes = 0;  // of the section
  std::string why;   // when not embedded and not an error: why not
};

// False with *err on an I/O error. A trace without its End record, or one
// that already has a section, is left as it is (result->why).
bool EmbedSymbols(const std::string& path, SymbolCache* cache, EmbedResult* result,
                  std::string* err);

}  // namespace pagewaste
