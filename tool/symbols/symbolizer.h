// Offline symbolization with elfutils libdw: turns the instruction pointers
// of a trace back into functions and source lines, using the module map the
// shim recorded (so PIE executables and shared libraries under ASLR resolve
// after the process is gone). Inline frames are expanded and C++ names
// demangled; without debug info it falls back to the symbol table, and
// without that to module+offset. A file whose build id is not the traced
// module's (the trace records it) is not read at all.
#pragma once

#include <sys/types.h>

#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/frames.h"
#include "reader/trace_reader.h"

namespace pagewaste {

// Whose permissions the module files are read with: root reporting on
// another user's trace reads only what that user could have read.
struct ReadIdentity {
  uid_t uid = 0;
  gid_t gid = 0;
};

// Where, and as whom, the module files a trace names are read.
struct ModuleFiles {
  std::optional<ReadIdentity> read_as;  // none: with our own permissions
  // Each module looked for by its file name in this directory rather than
  // at its path (the fuzzer's sandbox: its inputs name any path). Empty:
  // at its path.
  std::string directory;
};

class Symbolizer {
 public:
  explicit Symbolizer(const std::vector<ModuleInfo>& modules, ModuleFiles files = {});
  ~Symbolizer();
  Symbolizer(const Symbolizer&) = delete;
  Symbolizer& operator=(const Symbolizer&) = delete;

  // Frames for one return address, innermost (possibly inlined) first.
  const std::vector<Frame>& Symbolize(uint64_t return_address);

  // The modules whose file on disk is not the one traced (another build
  // id): their names are not taken, their frames are module+offset. One
  // line each, for the report.
  const std::vector<std::string>& warnings() const { return warnings_; }

  // The identity to read a trace's module files with: its owner's when we
  // are root and the trace is another user's (a crafted trace could name
  // /etc/shadow as a module); none otherwise.
  static std::optional<ReadIdentity> ReaderFor(const std::string& trace_path);

 private:
  std::vector<Frame> Resolve(uint64_t return_address);
  Dwarf_Die* FindCompileUnit(Dwfl_Module* mod, uint64_t pc, uint64_t* bias, Dwarf_Die* storage);
  const char* SymbolAt(Dwfl_Module* mod, uint64_t pc);
  std::vector<Dwarf_Die> ScopesAt(Dwarf_Die* cu, Dwarf_Addr pc);

 public:
  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  ModuleFiles files_;
  std::unordered_map<uint64_t, std::vector<Frame>> cache_;
  std::vector<std::string> warnings_;
};

std::string Demangle(const std::string& name);

}  // namespace pagewaste
