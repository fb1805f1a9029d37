// The program's own code against the libraries on the way to the kernel
// (program_code.h), and the labels that tell call sites apart.
#include "program_code.h"

#include <fmt/format.h>
#include <fnmatch.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <unordered_map>

namespace pagewaste {
namespace {

bool StartsWith(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

bool EndsWith(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string BaseName(const std::string& path) { return path.substr(path.rfind('/') + 1); }

bool Glob(const std::string& pattern, const std::string& text) {
  return !text.empty() && fnmatch(pattern.c_str(), text.c_str(), 0) == 0;
}

bool MatchesAny(const std::vector<std::string>& patterns, const Frame& f) {
  for (const std::string& p : patterns)
    if (Glob(p, f.function) || Glob(p, f.file) || Glob(p, BaseName(f.file)) ||
        Glob(p, f.module) || Glob(p, BaseName(f.module)))
      return true;
  return false;
}

// Directories whose files are toolchains' libraries wherever they are
// installed, by a part of their path: Zig's standard library and its
// bundled C library and compiler runtime, Rust's standard library (its
// paths keep the compiler's build directory), the Go and Rust package
// caches, and the system's headers (the C++ library's templates inlined
// into the program).
constexpr const char* kToolchainParts[] = {
    "/lib/libc/musl/", "/lib/libc/glibc/", "/pkg/mod/", "/.cargo/registry/", "/rustc/",
};
// Zig's, for its own source files only: a project may have a lib/std/ of
// its own in C.
constexpr const char* kZigParts[] = {"/lib/std/", "/lib/zig/std/", "/lib/compiler_rt/"};
constexpr const char* kSystemHeaders[] = {"/usr/include/", "/usr/local/include/"};
constexpr const char* kSystemLibraryDirs[] = {"/lib/", "/lib64/", "/lib32/", "/usr/lib/",
                                              "/usr/lib64/", "/usr/lib32/", "/usr/local/lib/",
                                              "/usr/libexec/"};

bool IsSharedObject(const std::string& module) {
  std::string name = BaseName(module);
  return EndsWith(name, ".so") || name.find(".so.") != std::string::npos;
}

// A module no program's own code lives in: a shared library in a system
// directory, the dynamic loader, pagewaste's shim.
bool IsLibraryModule(const std::string& module) {
  if (module.empty()) return false;
  std::string name = BaseName(module);
  if (StartsWith(name, "libpagewaste") || StartsWith(name, "ld-linux") || StartsWith(name, "ld-"))
    return IsSharedObject(module);
  if (!IsSharedObject(module)) return false;
  for (const char* dir : kSystemLibraryDirs)
    if (StartsWith(module, dir)) return true;
  return false;
}

bool Under(const std::string& path, const std::string& dir) {
  return !dir.empty() && path.size() > dir.size() && StartsWith(path, dir) &&
         (dir.back() == '/' || path[dir.size()] == '/');
}

// Frames compared as a report names them.
bool SameFrame(const Frame& a, const Frame& b) {
  return a.function == b.function && a.file == b.file && a.line == b.line &&
         (!a.function.empty() || a.module_offset == b.module_offset);
}

std::string WhereOf(const Frame& f) {
  std::string_view file = f.shown_file();
  if (!file.empty()) return fmt::format("{}:{}", file, f.line);
  if (!f.module.empty()) return fmt::format("{}+{:#x}", BaseName(f.module), f.module_offset);
  return fmt::format("{:#x}", f.address);
}

uint32_t NameHash(const Frame& f) {
  uint64_t h = std::hash<std::string>()(f.function);
  h = h * 0x9e3779b97f4a7c15ull ^ std::hash<std::string>()(f.file);
  h = h * 0x9e3779b97f4a7c15ull ^ static_cast<uint64_t>(f.line);
  if (f.function.empty()) h = h * 0x9e3779b97f4a7c15ull ^ f.module_offset;
  if (f.function.empty() && f.module.empty()) h = h * 0x9e3779b97f4a7c15ull ^ f.address;
  return static_cast<uint32_t>(h ^ (h >> 32));
}

// Extends a hash of the frames so far with one more (null: past the end of
// the stack), by the frame's name hash: deep stacks are hashed frame by
// frame for every site that shares a location.
uint64_t Mix(uint64_t hash, const Frame* f) {
  uint64_t v = f ? f->name_hash : 0x100000000ull;
  return (hash ^ v) * 0x9e3779b97f4a7c15ull + (hash >> 29);
}

}  // namespace

CodeOrigin::CodeOrigin(CodeRules rules) : rules_(std::move(rules)) {
  while (!rules_.source_root.empty() && rules_.source_root.back() == '/')
    rules_.source_root.pop_back();  // "/" itself becomes none: it holds the libraries too
}

void CodeOrigin::Learn(const std::vector<Frame>& frames) {
  // Go's runtime is in GOROOT/src/runtime/: the rest of GOROOT/src/ is
  // its standard library.
  for (const Frame& f : frames) {
    size_t at = f.file.rfind("/src/runtime/");
    if (at == std::string::npos || f.file.find('/', at + 13) != std::string::npos ||
        !StartsWith(f.function, "runtime."))
      continue;
    std::string root = f.file.substr(0, at + 5);
    if (std::find(toolchain_roots_.begin(), toolchain_roots_.end(), root) == toolchain_roots_.end())
      toolchain_roots_.push_back(root);
  }
}

bool CodeOrigin::InToolchain(const std::string& file) const {
  for (const char* part : kToolchainParts)
    if (file.find(part) != std::string::npos) return true;
  if (EndsWith(file, ".zig"))
    for (const char* part : kZigParts)
      if (file.find(part) != std::string::npos) return true;
  for (const char* dir : kSystemHeaders)
    if (StartsWith(file, dir)) return true;
  for (const std::string& root : toolchain_roots_)
    if (StartsWith(file, root)) return true;
  return false;
}

bool CodeOrigin::IsLibrary(const Frame& f) const {
  if (MatchesAny(rules_.own, f)) return false;
  if (MatchesAny(rules_.library, f)) return true;
  if (!f.file.empty() && InToolchain(f.file)) return true;
  if (!f.file.empty() && Under(f.file, rules_.source_root)) return false;
  if (IsLibraryModule(f.module)) return true;
  // An address no module holds is no line of anybody's.
  return f.function.empty() && f.file.empty() && f.module.empty();
}

std::string CodeOrigin::ShortPath(const std::string& file) const {
  if (file.empty()) return file;
  if (Under(file, rules_.source_root))
    return file.substr(rules_.source_root.size() + 1);
  for (const std::string& root : toolchain_roots_)
    if (StartsWith(file, root)) return file.substr(root.size());
  // Zig's library from the directory that holds std/; the package caches
  // from the package's name.
  for (const char* part : {"/lib/zig/", "/lib/", "/pkg/mod/", "/.cargo/registry/src/"}) {
    size_t at = file.rfind(part);
    if (at == std::string::npos) continue;
    std::string rest = file.substr(at + strlen(part));
    if (StartsWith(part, "/lib") &&
        !(StartsWith(rest, "std/") || StartsWith(rest, "compiler_rt/") || StartsWith(rest, "libc/")))
      continue;
    return rest;
  }
  if (StartsWith(file, "./")) return file.substr(2);
  return file;
}

void CodeOrigin::Classify(std::vector<Frame>* frames) const {
  for (Frame& f : *frames) {
    f.library = IsLibrary(f);
    f.shown_from = static_cast<uint32_t>(f.file.size() - ShortPath(f.file).size());
    f.name_hash = NameHash(f);
  }
}

std::vector<bool> OwnFrames(const Stack& frames) {
  std::vector<bool> own(frames.size(), false);
  bool any = false;
  for (size_t i = 0; i < frames.size(); ++i)
    if (!frames[i].library && !frames[i].file.empty()) own[i] = any = true;
  if (any) return own;
  for (size_t i = 0; i < frames.size(); ++i) own[i] = !frames[i].library;
  return own;
}

size_t LocationIndex(const Stack& frames) {
  if (frames.empty()) return SIZE_MAX;
  std::vector<bool> own = OwnFrames(frames);
  for (size_t i = 0; i < frames.size(); ++i)
    if (own[i]) return i;
  for (size_t i = 0; i < frames.size(); ++i)
    if (!frames[i].file.empty()) return i;
  return 0;
}

std::string FrameText(const Frame& f) {
  // An unknown function's name is already where it is: "?? (libx.so+0x1a2b)".
  if (f.function.empty()) return FrameName(f);
  return fmt::format("{} ({})", FrameName(f), WhereOf(f));
}

std::vector<std::string> SiteLabels(const std::vector<const Stack*>& stacks) {
  const size_t n = stacks.size();
  std::vector<std::string> labels(n);
  std::vector<size_t> loc(n);
  std::unordered_map<std::string, std::vector<size_t>> groups;
  for (size_t i = 0; i < n; ++i) {
    loc[i] = LocationIndex(*stacks[i]);
    labels[i] = loc[i] == SIZE_MAX ? "(no stack recorded)" : FrameText((*stacks[i])[loc[i]]);
    groups[labels[i]].push_back(i);
  }
  auto frame_at = [&](size_t i, ptrdiff_t offset) -> const Frame* {
    ptrdiff_t at = static_cast<ptrdiff_t>(loc[i]) + offset;
    const Stack& frames = *stacks[i];
    return at < 0 || at >= static_cast<ptrdiff_t>(frames.size()) ? nullptr : &frames[at];
  };
  for (auto& group : groups) {
    // Named, not bound: the lambdas below capture them.
    const std::string& base = group.first;
    const std::vector<size_t>& members = group.second;
    if (members.size() < 2 || loc[members[0]] == SIZE_MAX) continue;
    // Widen the window of frames around the location, outward (callers)
    // first, then inward, until each member's window is its own; a
    // member whose window stays shared has the same frames as another.
    std::vector<uint64_t> hash(members.size(), 0xcbf29ce484222325ull);
    std::vector<bool> done(members.size(), false);
    size_t longest = 0;
    for (size_t i : members) longest = std::max(longest, stacks[i]->size());
    // A member settled at one depth stays apart from the rest at every
    // depth after it: only the others are hashed on.
    size_t open = members.size();
    auto settle = [&](ptrdiff_t offset, bool outward) {
      std::unordered_map<uint64_t, size_t> count;
      for (size_t m = 0; m < members.size(); ++m) {
        if (done[m]) continue;
        hash[m] = Mix(hash[m], frame_at(members[m], offset));
        ++count[hash[m]];
      }
      for (size_t m = 0; m < members.size(); ++m) {
        if (done[m] || count[hash[m]] != 1) continue;
        done[m] = true;
        --open;
        const Frame* f = frame_at(members[m], offset);
        const Frame& at = (*stacks[members[m]])[loc[members[m]]];
        std::string gap = (offset > 1 || offset < -1) ? " ← …" : "";
        if (!f) {
          // Its stack ends where the others go on.
          labels[members[m]] = outward ? base + " (outermost)" : base + " (innermost)";
        } else if (outward) {
          labels[members[m]] = fmt::format("{}{} ← {}", FrameName(at), gap, FrameText(*f));
        } else {
          labels[members[m]] = fmt::format("{} via {}", base, FrameText(*f));
        }
      }
    };
    for (ptrdiff_t k = 1; open && k <= static_cast<ptrdiff_t>(longest); ++k) settle(k, true);
    for (ptrdiff_t k = 1; open && k <= static_cast<ptrdiff_t>(longest); ++k) settle(-k, false);
  }
  // Labels that still coincide (windows that name the same frames in a
  // different order of depth) are numbered, unless their stacks are the same.
  std::unordered_map<std::string, std::vector<size_t>> by_label;
  for (size_t i = 0; i < n; ++i) by_label[labels[i]].push_back(i);
  for (auto& [label, members] : by_label) {
    std::vector<size_t> firsts;  // the first of each distinct stack
    for (size_t i : members) {
      bool seen = false;
      for (size_t j : firsts) {
        const Stack& a = *stacks[i];
        const Stack& b = *stacks[j];
        if (a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), SameFrame)) {
          labels[i] = labels[j];
          seen = true;
          break;
        }
      }
      if (seen) continue;
      if (!firsts.empty()) labels[i] = fmt::format("{} #{}", label, firsts.size() + 1);
      firsts.push_back(i);
    }
  }
  return labels;
}

void LabelSites(const std::vector<std::vector<CallSite>*>& lists) {
  std::unordered_map<std::string, size_t> index;  // key -> stack
  std::vector<const Stack*> stacks;
  for (std::vector<CallSite>* list : lists)
    for (const CallSite& site : *list)
      if (index.emplace(site.key, stacks.size()).second) stacks.push_back(&site.frames);
  std::vector<std::string> labels = SiteLabels(stacks);
  for (std::vector<CallSite>* list : lists)
    for (CallSite& site : *list) site.label = labels[index[site.key]];
}

}  // namespace pagewaste
