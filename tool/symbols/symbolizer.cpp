// Offline symbolization with libdw: return addresses back into functions, files
// and lines (symbolizer.h).
#include "symbolizer.h"

#include <cxxabi.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <map>
#include <set>
#include <utility>

#include "elf/elf_headers.h"

namespace pagewaste {
namespace {

const Dwfl_Callbacks kCallbacks = {
    dwfl_build_id_find_elf,
    dwfl_standard_find_debuginfo,
    dwfl_offline_section_address,
    nullptr,
};

// A DIE's function name: the linkage name, demangled, where there is one
// (it carries the namespace and class), else the plain name.
std::string DieFunctionName(Dwarf_Die* die) {
  Dwarf_Attribute attr;
  const char* linkage = nullptr;
  if (dwarf_attr_integrate(die, DW_AT_linkage_name, &attr) ||
      dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr))
    linkage = dwarf_formstring(&attr);
  if (linkage) return Demangle(linkage);
  const char* name = nullptr;
  if (dwarf_attr_integrate(die, DW_AT_name, &attr)) name = dwarf_formstring(&attr);
  return name ? name : "";
}

// The file and line an inlined call was made from.
std::pair<std::string, int> CallSiteOf(Dwarf_Die* inlined, Dwarf_Die* cu) {
  Dwarf_Attribute attr;
  Dwarf_Word file_index = 0;
  Dwarf_Word line = 0;
  if (dwarf_attr(inlined, DW_AT_call_file, &attr))
    dwarf_formudata(&attr, &file_index);
  if (dwarf_attr(inlined, DW_AT_call_line, &attr)) dwarf_formudata(&attr, &line);
  Dwarf_Files* files = nullptr;
  size_t nfiles = 0;
  std::string file;
  if (dwarf_getsrcfiles(cu, &files, &nfiles) == 0 && file_index < nfiles) {
    const char* f = dwarf_filesrc(files, file_index, nullptr, nullptr);
    if (f) file = f;
  }
  return {file, static_cast<int>(line)};
}

}  // namespace

std::string Demangle(const std::string& name) {
  // Only a mangled name is one: __cxa_demangle also reads a bare type
  // encoding, and a C function named i, f or Pc would come back as int,
  // float or char*.
  if (name.compare(0, 2, "_Z") != 0) return name;
  int status = 0;
  char* out = abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status);
  if (status != 0 || !out) return name;
  std::string result(out);
  free(out);
  return result;
}

struct Symbolizer::Impl {
  Dwfl* dwfl = nullptr;
  // Modules dwfl could not load (missing file, vdso): still named in frames.
  std::vector<ModuleInfo> modules;
  // Every module's segments, sorted by start, for finding the module of an
  // address; end_before is the largest end of this range and those before
  // it, which bounds the search backwards. shift moves an address into the
  // copy of the module's file that dwfl holds: a file is reported once, at
  // the first load bias it had, however many times it was loaded.
  struct Range {
    uint64_t start, end;
    size_t module;  // index in modules: the later one wins an overlap
    int64_t shift;
    uint64_t end_before;
  };
  std::vector<Range> ranges;
  const Range* RangeOf(uint64_t pc) const;
  // Per module, the address ranges of its compile units, for the modules
  // whose units libdw cannot find by address itself.
  struct UnitRange {
    Dwarf_Addr start, end;
    Dwarf_Off offset;
  };
  std::map<Dwfl_Module*, std::vector<UnitRange>> unit_ranges;
  // Per module, its function symbols sorted by address: libdw's
  // dwfl_module_addrname scans the whole symbol table on every call, which
  // for a large stripped program (cc1plus: 100,000 symbols) made a report of
  // all its call sites take minutes.
  struct Symbol {
    GElf_Addr start;
    GElf_Xword size;
    int rank;  // global before weak before local, as libdw prefers them
    const char* name;
  };
  std::map<Dwfl_Module*, std::vector<Symbol>> symbols;
  // Per compile unit (by its DIE's address in the loaded DWARF), the code
  // ranges of its functions and inlined calls, for ScopesAt.
  struct ScopeRange {
    Dwarf_Addr low, high;
    Dwarf_Die die;
    int parent;  // the enclosing range's index, -1 at the top
  };
  std::unordered_map<const void*, std::vector<ScopeRange>> scope_index;
};

namespace {

bool IsScope(int tag) { return tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine; }

// Adds the code ranges of die's functions and inlined calls, and of its
// children's, depth first; parents are the indexes of the ranges that
// enclose die.
void IndexScopes(Dwarf_Die* die, const std::vector<int>& parents,
                 std::vector<Symbolizer::Impl::ScopeRange>* out);

}  // namespace

namespace {

int EnclosingOf(const std::vector<Symbolizer::Impl::ScopeRange>& ranges,
                const std::vector<int>& parents, Dwarf_Addr low) {
  for (int p : parents)
    if (low >= ranges[static_cast<size_t>(p)].low && low < ranges[static_cast<size_t>(p)].high)
      return p;
  return parents.empty() ? -1 : parents.front();
}

void IndexScopes(Dwarf_Die* die, const std::vector<int>& parents,
                 std::vector<Symbolizer::Impl::ScopeRange>* out) {
  Dwarf_Die child;
  if (dwarf_child(die, &child) != 0) return;
  do {
    std::vector<int> inner = parents;
    if (IsScope(dwarf_tag(&child))) {
      std::vector<int> pieces;
      Dwarf_Addr base, low, high;
      for (ptrdiff_t o = 0; (o = dwarf_ranges(&child, o, &base, &low, &high)) > 0;) {
        if (low >= high) continue;
        pieces.push_back(static_cast<int>(out->size()));
        out->push_back({low, high, child, EnclosingOf(*out, parents, low)});
      }
      if (!pieces.empty()) inner = pieces;
    }
    if (dwarf_haschildren(&child)) IndexScopes(&child, inner, out);
  } while (dwarf_siblingof(&child, &child) == 0);
}

}  // namespace

// The functions and inlined calls whose code holds pc, innermost first, as
// dwarf_getscopes would give them (without the lexical blocks between):
// it walks the whole unit on every call, which for a large unit
// (CPython's ceval.c) made run's symbol section cost seconds. The unit's
// ranges are indexed once instead, and the innermost one holding pc found by
// binary search: ranges nest, so it is the last one starting at or before pc
// that holds it, reached from any later one through its parents.
std::vector<Dwarf_Die> Symbolizer::ScopesAt(Dwarf_Die* cu, Dwarf_Addr pc) {
  auto [it, fresh] = impl_->scope_index.try_emplace(cu->addr);
  std::vector<Impl::ScopeRange>& ranges = it->second;
  if (fresh) {
    IndexScopes(cu, {}, &ranges);
    // By start; at one start the outer (earlier indexed) first. Parent
    // indexes are remapped after sorting.
    std::vector<size_t> order(ranges.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return ranges[a].low < ranges[b].low; });
    std::vector<int> where(ranges.size());
    for (size_t i = 0; i < order.size(); ++i) where[order[i]] = static_cast<int>(i);
    std::vector<Impl::ScopeRange> sorted;
    sorted.reserve(ranges.size());
    for (size_t i : order) {
      Impl::ScopeRange r = ranges[i];
      if (r.parent >= 0) r.parent = where[static_cast<size_t>(r.parent)];
      sorted.push_back(r);
    }
    ranges = std::move(sorted);
  }
  std::vector<Dwarf_Die> scopes;
  auto after = std::upper_bound(ranges.begin(), ranges.end(), pc,
                                [](Dwarf_Addr v, const Impl::ScopeRange& r) { return v < r.low; });
  int i = static_cast<int>(after - ranges.begin()) - 1;
  while (i >= 0 && !(pc >= ranges[static_cast<size_t>(i)].low &&
                     pc < ranges[static_cast<size_t>(i)].high))
    i = ranges[static_cast<size_t>(i)].parent;
  for (; i >= 0; i = ranges[static_cast<size_t>(i)].parent)
    scopes.push_back(ranges[static_cast<size_t>(i)].die);
  return scopes;
}

// The function symbol at pc, as dwfl_module_addrname would say: the one
// that contains it, else the nearest one before it without a size; null if
// there is none.
const char* Symbolizer::SymbolAt(Dwfl_Module* mod, uint64_t pc) {
  auto [it, fresh] = impl_->symbols.try_emplace(mod);
  std::vector<Impl::Symbol>& table = it->second;
  if (fresh) {
    int count = dwfl_module_getsymtab(mod);
    for (int i = 1; i < count; ++i) {
      GElf_Sym sym;
      GElf_Addr address;
      const char* name = dwfl_module_getsym_info(mod, i, &sym, &address, nullptr, nullptr, nullptr);
      int type = GELF_ST_TYPE(sym.st_info);
      int binding = GELF_ST_BIND(sym.st_info);
      int rank = binding == STB_GLOBAL ? 0 : binding == STB_WEAK ? 1 : 2;
      if (name && *name && sym.st_shndx != SHN_UNDEF &&
          (type == STT_FUNC || type == STT_GNU_IFUNC))
        table.push_back({address, sym.st_size, rank, name});
    }
    // By address; at one address the preferred name last, where the
    // look-up lands.
    std::sort(table.begin(), table.end(), [](const Impl::Symbol& a, const Impl::Symbol& b) {
      return a.start != b.start ? a.start < b.start : a.rank > b.rank;
    });
  }
  auto after = std::upper_bound(table.begin(), table.end(), pc,
                                [](uint64_t v, const Impl::Symbol& sym) { return v < sym.start; });
  if (after == table.begin()) return nullptr;
  const Impl::Symbol& sym = *(after - 1);
  if (sym.size ? pc < sym.start + sym.size : true) return sym.name;
  return nullptr;
}

// The compile unit holding pc. libdw finds it from .debug_aranges or the
// units' low/high pc; Zig 0.11 writes neither (its units have DW_AT_ranges
// only), so the units' ranges are read once per module and searched.
Dwarf_Die* Symbolizer::FindCompileUnit(Dwfl_Module* mod, uint64_t pc, uint64_t* bias,
                                       Dwarf_Die* storage) {
  Dwarf_Addr b = 0;
  if (Dwarf_Die* cu = dwfl_module_addrdie(mod, pc, &b)) {
    *bias = b;
    return cu;
  }
  Dwarf* dwarf = dwfl_module_getdwarf(mod, &b);
  if (!dwarf) return nullptr;
  *bias = b;
  auto [it, fresh] = impl_->unit_ranges.try_emplace(mod);
  if (fresh) {
    Dwarf_Off offset = 0, next;
    size_t header_size;
    while (dwarf_nextcu(dwarf, offset, &next, &header_size, nullptr, nullptr, nullptr) == 0) {
      Dwarf_Die unit;
      if (dwarf_offdie(dwarf, offset + header_size, &unit)) {
        Dwarf_Addr base, start, end;
        for (ptrdiff_t o = 0; (o = dwarf_ranges(&unit, o, &base, &start, &end)) > 0;)
          it->second.push_back({start, end, offset + header_size});
      }
      offset = next;
    }
  }
  Dwarf_Addr address = pc - b;
  for (const auto& r : it->second)
    if (address >= r.start && address < r.end) return dwarf_offdie(dwarf, r.offset, storage);
  return nullptr;
}

namespace {

// For its lifetime, this thread's file system identity (setfsuid: the ids
// the kernel checks file permissions against) is the one given.
class ReadingAs {
 public:
  explicit ReadingAs(const std::optional<ReadIdentity>& who) : active_(who.has_value()) {
    if (!active_) return;
    old_gid_ = static_cast<gid_t>(setfsgid(who->gid));
    old_uid_ = static_cast<uid_t>(setfsuid(who->uid));
  }
  ~ReadingAs() {
    if (!active_) return;
    setfsuid(old_uid_);
    setfsgid(old_gid_);
  }
  ReadingAs(const ReadingAs&) = delete;
  ReadingAs& operator=(const ReadingAs&) = delete;

 private:
  bool active_;
  uid_t old_uid_ = 0;
  gid_t old_gid_ = 0;
};

}  // namespace

std::optional<ReadIdentity> Symbolizer::ReaderFor(const std::string& trace_path) {
  struct stat st;
  if (geteuid() != 0 || stat(trace_path.c_str(), &st) != 0 || st.st_uid == 0) return std::nullopt;
  return ReadIdentity{st.st_uid, st.st_gid};
}

Symbolizer::Symbolizer(const std::vector<ModuleInfo>& modules, ModuleFiles files)
    : impl_(std::make_unique<Impl>()), files_(std::move(files)) {
  ReadingAs reading(files_.read_as);
  impl_->modules = modules;
  std::map<std::string, uint64_t> reported_bias;  // by path: the bias dwfl has it at
  for (size_t i = 0; i < modules.size(); ++i) {
    const ModuleInfo& m = modules[i];
    uint64_t bias = reported_bias.emplace(m.path, m.load_bias).first->second;
    for (const ModuleSegment& s : m.segments)
      if (s.length)
        impl_->ranges.push_back({s.start, s.start + s.length, i,
                                 static_cast<int64_t>(bias - m.load_bias), 0});
  }
  std::sort(impl_->ranges.begin(), impl_->ranges.end(),
            [](const Impl::Range& a, const Impl::Range& b) { return a.start < b.start; });
  uint64_t end_before = 0;
  for (Impl::Range& r : impl_->ranges) r.end_before = end_before = std::max(end_before, r.end);
  impl_->dwfl = dwfl_begin(&kCallbacks);
  if (!impl_->dwfl) return;
  dwfl_report_begin(impl_->dwfl);
  std::set<std::string> seen;
  std::map<std::string, bool> same_file;  // by path: its build id is the traced one
  for (const ModuleInfo& m : modules) {
    if (!seen.insert(m.path).second) continue;
    // A trace names its modules' paths, and a crafted or outdated one may
    // name anything: only a regular file is read, opened without blocking
    // (a FIFO would hang the report; /dev/zero would never end).
    std::string file = files_.directory.empty()
                           ? m.path
                           : files_.directory + "/" + m.path.substr(m.path.rfind('/') + 1);
    int fd = open(file.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 && errno == EACCES && files_.read_as) {
      warnings_.push_back(m.path + ": the trace's owner (uid " + std::to_string(files_.read_as->uid) +
                          ") may not read it, so neither does this report; its frames are "
                          "module+offset");
      continue;
    }
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      if (fd >= 0) {
        close(fd);
        warnings_.push_back(m.path + ": not a regular file; its frames are module+offset");
      }
      continue;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    std::string opened = "/proc/self/fd/" + std::to_string(fd);
    if (!m.build_id.empty()) {
      auto known = same_file.find(m.path);
      if (known == same_file.end()) {
        std::string on_disk = ptrace::ReadBuildId(opened);
        known = same_file.emplace(m.path, on_disk.empty() || on_disk == m.build_id).first;
        if (!known->second)
          warnings_.push_back(m.path + ": build id " + on_disk + " is not the traced module's (" +
                              m.build_id + "); its names are not used");
      }
      if (!known->second) {
        close(fd);
        continue;
      }
    }
    // add_p_vaddr: the module starts at the bias plus its first segment's
    // address, and addresses in it are offset by the bias. The file is the
    // one checked above; libdw keeps the descriptor when it takes it.
    if (!dwfl_report_elf(impl_->dwfl, m.path.c_str(), m.path.c_str(), fd, m.load_bias, true))
      close(fd);
  }
  dwfl_report_end(impl_->dwfl, nullptr, nullptr);
}

const Symbolizer::Impl::Range* Symbolizer::Impl::RangeOf(uint64_t pc) const {
  auto after = std::upper_bound(ranges.begin(), ranges.end(), pc,
                                [](uint64_t v, const Range& r) { return v < r.start; });
  const Range* found = nullptr;
  for (auto it = after; it != ranges.begin();) {
    --it;
    if (it->end_before <= pc) break;  // nothing at or before it reaches pc
    if (pc < it->end && (!found || it->module > found->module)) found = &*it;
  }
  return found;
}

Symbolizer::~Symbolizer() {
  if (impl_->dwfl) dwfl_end(impl_->dwfl);
}

const std::vector<Frame>& Symbolizer::Symbolize(uint64_t return_address) {
  auto it = cache_.find(return_address);
  if (it != cache_.end()) return it->second;
  ReadingAs reading(files_.read_as);  // libdw may open separate debug files now
  return cache_.emplace(return_address, Resolve(return_address)).first->second;
}

std::vector<Frame> Symbolizer::Resolve(uint64_t return_address) {
  // A return address points after the call; the call itself is one byte
  // back, which keeps the line right when the call ends a function.
  uint64_t pc = return_address ? return_address - 1 : 0;
  Frame base;
  base.address = return_address;
  const Impl::Range* range = impl_->RangeOf(pc);
  if (range) {
    const ModuleInfo& m = impl_->modules[range->module];
    base.module = m.path;
    base.module_offset = pc - m.load_bias;
    pc += static_cast<uint64_t>(range->shift);  // where dwfl has this file
  }
  Dwfl_Module* mod = impl_->dwfl && range ? dwfl_addrmodule(impl_->dwfl, pc) : nullptr;
  if (!mod) return {base};

  // The outermost (not inlined) function, from the symbol table.
  if (const char* sym = SymbolAt(mod, pc)) base.function = Demangle(sym);
  if (Dwfl_Line* line = dwfl_module_getsrc(mod, pc)) {
    int lineno = 0;
    const char* file = dwfl_lineinfo(line, nullptr, &lineno, nullptr, nullptr, nullptr);
    if (file) base.file = file;
    base.line = lineno;
  }

  Dwarf_Addr bias = 0;
  Dwarf_Die cu_storage;
  Dwarf_Die* cu = FindCompileUnit(mod, pc, &bias, &cu_storage);
  if (base.file.empty() && cu) {
    // The line table of the unit found by its ranges (see FindCompileUnit).
    if (Dwarf_Line* line = dwarf_getsrc_die(cu, pc - bias)) {
      int lineno = 0;
      const char* file = dwarf_linesrc(line, nullptr, nullptr);
      dwarf_lineno(line, &lineno);
      if (file) base.file = file;
      base.line = lineno;
    }
  }
  std::vector<Dwarf_Die> scopes;
  if (cu) scopes = ScopesAt(cu, pc - bias);
  int nscopes = static_cast<int>(scopes.size());
  std::vector<Frame> frames;
  // scopes[0] is the innermost. Each inlined scope becomes a frame whose
  // location is the line inside it; its caller's location is the scope's
  // call site.
  std::string file = base.file;
  int line = base.line;
  for (int i = 0; i < nscopes; ++i) {
    int tag = dwarf_tag(&scopes[i]);
    if (tag != DW_TAG_inlined_subroutine && tag != DW_TAG_subprogram) continue;
    Frame f = base;
    f.file = file;
    f.line = line;
    std::string name = DieFunctionName(&scopes[i]);
    if (tag == DW_TAG_inlined_subroutine) {
      f.function = name;
      f.inlined = true;
      frames.push_back(f);
      std::tie(file, line) = CallSiteOf(&scopes[i], cu);
      continue;
    }
    if (base.function.empty()) f.function = name;
    frames.push_back(f);
    break;
  }
  if (frames.empty() || frames.back().inlined) {
    // No enclosing subprogram scope: the symbol table's function, at the
    // place the outermost inlined call was made.
    Frame f = base;
    f.file = file;
    f.line = line;
    frames.push_back(f);
  }
  return frames;
}

}  // namespace pagewaste
