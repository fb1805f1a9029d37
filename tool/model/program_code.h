// Which frames of a stack are the program's own code, and which are only the
// path from it to the system call: the language's standard library and
// runtime (Zig's lib/std, Go's GOROOT, Rust's), the C and C++ runtimes and
// headers, the dynamic loader, system libraries and pagewaste's own shim.
// A call site is named by its first frame in the program's own code, and
// every output that names a site (text, JSON, HTML, check, diff, the CI
// formats) asks this file which frame that is and what to call the site.
//
// The rules, first match wins:
//   1. the user's --own-code patterns: the program's;
//   2. the user's --library-code patterns: a library's;
//   3. a source file in a toolchain's library directory: a library's;
//   4. a source file under the source root: the program's;
//   5. a frame of a shared library in a system directory, of the dynamic
//      loader or of pagewaste's shim: a library's;
//   6. anything else: the program's (a frame without a source file only
//      where no frame of its stack has one).
// A pattern is a glob (fnmatch, '*' crosses '/') on the frame's function,
// its source file's path or its module's path.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "report_model.h"

namespace pagewaste {

struct CodeRules {
  // Source paths under it are the program's (rule 4) and are shown
  // relative to it. Empty: none.
  std::string source_root;
  std::vector<std::string> own;      // rule 1
  std::vector<std::string> library;  // rule 2
};

class CodeOrigin {
 public:
  explicit CodeOrigin(CodeRules rules);

  // Learns the toolchains' roots from the source files the frames name
  // (Go's GOROOT: the directory above src/runtime/ of a runtime.* function's
  // file): call with every frame first.
  void Learn(const std::vector<Frame>& frames);
  // Sets each frame's library flag and where its shown path begins.
  void Classify(std::vector<Frame>* frames) const;

  bool IsLibrary(const Frame& frame) const;
  // The path a report shows: relative to the source root; from the
  // library's root for a toolchain's file (std/os/linux.zig,
  // runtime/malloc.go); otherwise as the debug information gives it.
  // Always an ending of file.
  std::string ShortPath(const std::string& file) const;

 private:
  bool InToolchain(const std::string& file) const;
  CodeRules rules_;
  std::vector<std::string> toolchain_roots_;  // each ends in '/'
};

// The index of the frame that names a site: its first frame in the
// program's own code; where it has none, its innermost frame with a
// source file, else its innermost. SIZE_MAX for no frames. The frames must
// have been classified.
size_t LocationIndex(const Stack& frames);

// Whether each frame counts as the program's own in its stack: the
// program's frames with a source file, or, where a stack has none of those,
// those without one that are not a library's.
std::vector<bool> OwnFrames(const Stack& frames);

// "page_alloc (objs.c:6)": how one frame is named, with its short file.
std::string FrameText(const Frame& frame);

// A label for each stack that tells it apart from the others: its location
// frame ("page_alloc (objs.c:6)"), and where two stacks share that, the
// callers where they part ("page_alloc ← make_tag (objs.c:12)", or
// "page_alloc ← … ← run (t.c:40)" when the frames between are the same),
// or where they differ only inside it, the first frame inward where they
// part ("main.fill (fill.go:8) via runtime.(*mheap).grow"). Stacks with
// the same frames get the same label. The frames must have been
// classified (CodeOrigin::Classify sets what they are compared by).
std::vector<std::string> SiteLabels(const std::vector<const Stack*>& stacks);

// Sets the label of each site in the lists, unique across all of them
// (a site in several lists, by key, has one label).
void LabelSites(const std::vector<std::vector<CallSite>*>& lists);

}  // namespace pagewaste
