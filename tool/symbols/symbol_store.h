// Symbols kept between runs: what each module's return addresses were
// symbolized to, by offset, in a file named by the module's build id under
// the user's cache directory ($XDG_CACHE_HOME/pagewaste/symbols, or
// ~/.cache/pagewaste/symbols). Loading a library's debug information is
// most of what `run` adds after a short program's exit (libdw inflating the
// C library's compressed sections, for the few addresses of its own that
// every stack holds); with the store, a run loads it only for addresses no
// earlier run has seen.
//
// A file is used only when it is a regular file of ours in a directory of
// ours that no one else may enter, and was made by this same build of
// pagewaste from the same module file and debug file (a copy stripped of
// its debug information keeps its build id); anything else is passed over
// and the module symbolized afresh. Files are made private (0600), beside
// their name, and renamed into place, never written through a link.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "reader/symbol_section.h"

namespace pagewaste {

// A module's frames, by its offset from the module's load bias.
using ModuleFrames = std::map<uint64_t, std::vector<SymbolFrame>>;

class SymbolStore {
 public:
  // The store the environment names: PAGEWASTE_SYMBOL_CACHE (a directory;
  // "off" for none), else under $XDG_CACHE_HOME or $HOME/.cache. Null when
  // off, or when the directory cannot be made, or is not ours and private.
  static std::unique_ptr<SymbolStore> FromEnvironment();

  // The store in directory, made (0700) if missing; null as above.
  // build_identity: what says which build of pagewaste made a file (its
  // own build id); a file made by another is not used.
  static std::unique_ptr<SymbolStore> Open(const std::string& directory,
                                           const std::string& build_identity);
  ~SymbolStore();
  SymbolStore(const SymbolStore&) = delete;
  SymbolStore& operator=(const SymbolStore&) = delete;

  // What is stored for the module (its path and build id, which must not be
  // empty); nothing when the file is missing, damaged, made by another
  // build, or from another debug file than the one there now.
  ModuleFrames Load(const SymbolModule& module) const;
  // Replaces the module's file with frames. False when it could not be
  // written (the store is a cache: the run goes on without it).
  bool Save(const SymbolModule& module, const ModuleFrames& frames) const;

 private:
  SymbolStore(int directory_fd, std::string build_identity);
  // What the module's frames were made from, besides its build id: this
  // build of pagewaste, the module's file, and the separate debug file
  // libdw finds by the build id (each file's identity and time, or that
  // there is none).
  std::string Fingerprint(const SymbolModule& module) const;

  int directory_fd_;
  std::string build_identity_;
};

}  // namespace pagewaste
