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
  ctx->writer->Module(info->dlpi_addr, segments, count, path);
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

void WriteModuleMap(RecordWriter* writer, uint64_t generation,
                    const char* exe_path) {
  writer->ModuleMap(generation);
  MapContext ctx{writer, exe_path};
  dl_iterate_phdr(OnModule, &ctx);
}

CodeRange FindCodeContaining(const void* address) {
  FindContext ctx{reinterpret_cast<uintptr_t>(address), {}};
  dl_iterate_phdr(FindContaining, &ctx);
  return ctx.range;
}

}  // namespace pagewaste::shim
