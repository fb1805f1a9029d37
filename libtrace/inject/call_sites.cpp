// See call_sites.h. Walks each object's dynamic section for its symbol and
// string tables and its two relocation tables (DT_JMPREL for the PLT's
// entries, DT_RELA for the GOT's data entries) and compares each
// relocation's symbol name with the redirected ones.
#include "call_sites.h"

#include <elf.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

namespace pagewaste::inject {
namespace {

struct Changed {
  void** slot;
  void* original;
  void* target;
  uintptr_t relro_start, relro_end;  // the object's RELRO range (empty if none)
};

constexpr int kMaxChanged = 8192;
Changed g_changed[kMaxChanged];
int g_changed_count = 0;
uint32_t g_unredirected = 0;

// A spin lock: a dlopen in two threads at once patches one after the other.
int g_lock = 0;
void Lock() {
  while (__atomic_exchange_n(&g_lock, 1, __ATOMIC_ACQUIRE)) syscall(SYS_sched_yield);
}
void Unlock() { __atomic_store_n(&g_lock, 0, __ATOMIC_RELEASE); }

// Writes one entry, through mprotect where the entry lies in RELRO.
void Write(void** slot, void* value, uintptr_t relro_start, uintptr_t relro_end) {
  auto at = reinterpret_cast<uintptr_t>(slot);
  bool read_only = at >= relro_start && at < relro_end;
  uintptr_t page = at & ~uintptr_t{4095};
  if (read_only && syscall(SYS_mprotect, page, 4096, PROT_READ | PROT_WRITE) != 0) return;
  __atomic_store_n(slot, value, __ATOMIC_RELEASE);
  if (read_only) syscall(SYS_mprotect, page, 4096, PROT_READ);
}

struct Walk {
  const Redirect* redirects;
  int count;
  uintptr_t self;
  int changed;
};

bool Holds(const dl_phdr_info* info, uintptr_t address) {
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    uintptr_t start = info->dlpi_addr + ph.p_vaddr;
    if (ph.p_type == PT_LOAD && address >= start && address < start + ph.p_memsz) return true;
  }
  return false;
}

bool Skipped(const dl_phdr_info* info, uintptr_t self) {
  const char* name = info->dlpi_name ? info->dlpi_name : "";
  return strstr(name, "linux-vdso") || strstr(name, "ld-linux") || Holds(info, self);
}

void RedirectTable(const ElfW(Rela)* rela, size_t bytes, const ElfW(Sym)* symbols,
                   const char* strings, const dl_phdr_info* info, uintptr_t relro_start,
                   uintptr_t relro_end, Walk* walk) {
  for (size_t i = 0; i < bytes / sizeof *rela; ++i) {
    uint32_t type = ELF64_R_TYPE(rela[i].r_info);
    if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT) continue;
    const char* name = strings + symbols[ELF64_R_SYM(rela[i].r_info)].st_name;
    for (int r = 0; r < walk->count; ++r) {
      if (strcmp(name, walk->redirects[r].name) != 0) continue;
      auto** slot = reinterpret_cast<void**>(info->dlpi_addr + rela[i].r_offset);
      void* target = walk->redirects[r].target;
      if (*slot == target) break;
      if (g_changed_count == kMaxChanged) {
        ++g_unredirected;
        break;
      }
      g_changed[g_changed_count++] = {slot, *slot, target, relro_start, relro_end};
      Write(slot, target, relro_start, relro_end);
      ++walk->changed;
      break;
    }
  }
}

int RedirectObject(dl_phdr_info* info, size_t, void* data) {
  auto* walk = static_cast<Walk*>(data);
  if (Skipped(info, walk->self)) return 0;
  const ElfW(Dyn)* dynamic = nullptr;
  uintptr_t relro_start = 0, relro_end = 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_DYNAMIC)
      dynamic = reinterpret_cast<const ElfW(Dyn)*>(info->dlpi_addr + ph.p_vaddr);
    if (ph.p_type == PT_GNU_RELRO) {
      relro_start = info->dlpi_addr + ph.p_vaddr;
      relro_end = relro_start + ph.p_memsz;
    }
  }
  if (!dynamic) return 0;
  uintptr_t symtab = 0, strtab = 0, jmprel = 0, rela = 0;
  size_t jmprel_bytes = 0, rela_bytes = 0;
  for (const ElfW(Dyn)* d = dynamic; d->d_tag != DT_NULL; ++d) {
    switch (d->d_tag) {
      case DT_SYMTAB: symtab = d->d_un.d_ptr; break;
      case DT_STRTAB: strtab = d->d_un.d_ptr; break;
      case DT_JMPREL: jmprel = d->d_un.d_ptr; break;
      case DT_PLTRELSZ: jmprel_bytes = d->d_un.d_val; break;
      case DT_RELA: rela = d->d_un.d_ptr; break;
      case DT_RELASZ: rela_bytes = d->d_un.d_val; break;
    }
  }
  // The loader relocates these addresses in place; where it has not, they
  // are the object's own.
  auto at = [&](uintptr_t p) { return p && p < info->dlpi_addr ? p + info->dlpi_addr : p; };
  if (!symtab || !strtab) return 0;
  const auto* symbols = reinterpret_cast<const ElfW(Sym)*>(at(symtab));
  const auto* strings = reinterpret_cast<const char*>(at(strtab));
  if (jmprel)
    RedirectTable(reinterpret_cast<const ElfW(Rela)*>(at(jmprel)), jmprel_bytes, symbols,
                  strings, info, relro_start, relro_end, walk);
  if (rela)
    RedirectTable(reinterpret_cast<const ElfW(Rela)*>(at(rela)), rela_bytes, symbols, strings,
                  info, relro_start, relro_end, walk);
  return 0;
}

}  // namespace

int RedirectCallSites(const Redirect* redirects, int count, const void* self) {
  Lock();
  Walk walk{redirects, count, reinterpret_cast<uintptr_t>(self), 0};
  dl_iterate_phdr(RedirectObject, &walk);
  Unlock();
  return walk.changed;
}

int RestoreCallSites() {
  Lock();
  int restored = 0;
  for (int i = 0; i < g_changed_count; ++i) {
    Changed& c = g_changed[i];
    if (*c.slot != c.target) continue;  // rebound since (an object reloaded)
    Write(c.slot, c.original, c.relro_start, c.relro_end);
    ++restored;
  }
  g_changed_count = 0;
  Unlock();
  return restored;
}

namespace {
int MarkLoaded(dl_phdr_info* info, size_t, void* data) {
  auto* loaded = static_cast<bool*>(data);
  for (int i = 0; i < g_changed_count; ++i)
    if (!loaded[i] && Holds(info, reinterpret_cast<uintptr_t>(g_changed[i].slot)))
      loaded[i] = true;
  return 0;
}
}  // namespace

void ForgetUnloadedCallSites() {
  static bool loaded[kMaxChanged];
  Lock();
  memset(loaded, 0, sizeof loaded);
  dl_iterate_phdr(MarkLoaded, loaded);
  int kept = 0;
  for (int i = 0; i < g_changed_count; ++i)
    if (loaded[i]) g_changed[kept++] = g_changed[i];
  g_changed_count = kept;
  Unlock();
}

uint32_t UnredirectedCallSites() { return g_unredirected; }
uint32_t RedirectedCallSites() { return static_cast<uint32_t>(g_changed_count); }

}  // namespace pagewaste::inject
