// The loaded modules, written to the trace so that stacks are symbolized after
// the process is gone (module_map.h).
#include "module_map.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>

namespace pagewaste::shim {
namespace {

struct MapContext {
  RecordWriter* writer;
  const char* exe_path;
};

// The module's GNU build id, in hex, from its PT_NOTE segments in memory
// (mapped with the module); empty when it has none. No allocation.
void BuildIdOf(const struct dl_phdr_info* info, char* hex, size_t cap) {
  static const char kHex[] = "0123456789abcdef";
  hex[0] = 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_NOTE) continue;
    const auto* p = reinterpret_cast<const unsigned char*>(info->dlpi_addr + ph.p_vaddr);
    const unsigned char* end = p + ph.p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      const auto* note = reinterpret_cast<const ElfW(Nhdr)*>(p);
      const unsigned char* name = p + sizeof *note;
      const unsigned char* desc = name + ((note->n_namesz + 3) & ~3u);
      const unsigned char* next = desc + ((note->n_descsz + 3) & ~3u);
      if (next > end) break;
      if (note->n_type == NT_GNU_BUILD_ID && note->n_namesz == 4 && name[0] == 'G' &&
          name[1] == 'N' && name[2] == 'U' && name[3] == 0 && 2 * note->n_descsz < cap) {
        for (size_t j = 0; j < note->n_descsz; ++j) {
          hex[2 * j] = kHex[desc[j] >> 4];
          hex[2 * j + 1] = kHex[desc[j] & 15];
        }
        hex[2 * note->n_descsz] = 0;
        return;
      }
      p = next;
    }
  }
}

int OnModule(struct dl_phdr_info* info, size_t, void* data) {
  auto* ctx = static_cast<MapContext*>(data);
  ModuleSegment segments[kMaxModuleSegments];
  int count = 0;
  for (int i = 0; i < info->dlpi_phnum && count < kMaxModuleSegments; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X))
      segments[count++] = {info->dlpi_addr + ph.p_vaddr, ph.p_memsz};
  }
  if (count == 0) return 0;
  const char* path = info->dlpi_name;
  if (!path || !*path) path = ctx->exe_path;
  char build_id[129];
  BuildIdOf(info, build_id, sizeof build_id);
  ctx->writer->Module(info->dlpi_addr, segments, count, path, build_id);
  return 0;
}

struct FindContext {
  uintptr_t probe;
  CodeRange range;
};

int FindContaining(struct dl_phdr_info* info, size_t, void* data) {
  auto* ctx = static_cast<FindContext*>(data);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    uintptr_t start = info->dlpi_addr + ph.p_vaddr;
    if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X) && ctx->probe >= start &&
        ctx->probe < start + ph.p_memsz) {
      ctx->range = {start, start + ph.p_memsz};
      return 1;
    }
  }
  return 0;
}

}  // namespace

void WriteModuleMap(RecordWriter* writer, uint64_t generation, uint64_t seq,
                    const char* exe_path) {
  writer->ModuleMap(generation, seq);
  MapContext ctx{writer, exe_path};
  dl_iterate_phdr(OnModule, &ctx);
}

CodeRange FindCodeContaining(const void* address) {
  FindContext ctx{reinterpret_cast<uintptr_t>(address), {}};
  dl_iterate_phdr(FindContaining, &ctx);
  return ctx.range;
}

}  // namespace pagewaste::shim
