// The symbol section of a trace: what each return address of its stacks is
// (function, file, line, the inline chain, module), written by `pagewaste
// run` once the program has exited, so that a trace kept as a CI artifact is
// reported on another machine, after the binaries are gone, with the names
// and lines it had. Layout in format.h (kChunkSymbols, SymbolRecordType).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace pagewaste {

struct SymbolFrame {
  std::string function;  // empty when unknown
  std::string file;      // empty when unknown
  uint32_t line = 0;
  std::string module;    // path
  uint64_t module_offset = 0;
  bool inlined = false;  // inlined into the next frame
};

struct SymbolizedAddress {
  uint64_t address = 0;
  std::vector<SymbolFrame> frames;  // innermost first
};

struct SymbolModule {
  std::string path;
  std::string build_id;  // hex; empty when the file has none
};

// Whole chunks (prefix included) holding the section, for appending after
// the End record.
std::vector<uint8_t> EncodeSymbolSection(const std::vector<SymbolModule>& modules,
                                         const std::vector<SymbolizedAddress>& addresses);

// The same records, plain and in one piece, as DecodeSymbolRecords reads
// them (for a file of symbols kept apart from any trace).
std::vector<uint8_t> EncodeSymbolRecords(const std::vector<SymbolModule>& modules,
                                         const std::vector<SymbolizedAddress>& addresses);

// Decodes the plain records of one section chunk (after expansion). False
// with *why when they are damaged, or when *named_bytes (the bytes of names
// the frames delivered, a running count over the section's chunks) passes
// format::kMaxSymbolNameBytes; what came before is delivered.
bool DecodeSymbolRecords(const uint8_t* p, size_t size,
                         const std::function<void(const SymbolModule&)>& on_module,
                         const std::function<void(const SymbolizedAddress&)>& on_address,
                         uint64_t* named_bytes, std::string* why);

}  // namespace pagewaste
