// Resolution of the real functions, and the bootstrap pool that serves
// dlsym's own calloc while the real calloc is still unknown (dlsym allocates
// its error buffer through the very malloc family we are resolving).
#include "real_functions.h"

#include <dlfcn.h>

#include <atomic>

namespace pagewaste::shim {

RealFunctions real;

namespace {

enum Policy { kRequired, kOptional };

struct Entry {
  const char* name;
  void** slot;
  Policy policy;
};

const Entry kEntries[] = {
#define PW_HOOK(ret, name, params, policy) \
  {#name, reinterpret_cast<void**>(&real.name), policy},
#include "hooks.def"
#undef PW_HOOK
};

// 64 KiB is far more than dlsym and libunwind's first calls need; memory from
// here is never returned (free() of it is a no-op).
alignas(64) unsigned char g_pool[64 << 10];
std::atomic<size_t> g_pool_used{0};

}  // namespace

bool ResolveRealFunctions(const char** missing) {
  bool ok = true;
  for (const Entry& e : kEntries) {
    *e.slot = dlsym(RTLD_NEXT, e.name);
    if (!*e.slot && e.policy == kRequired) {
      *missing = e.name;
      ok = false;
    }
  }
  return ok;
}

uintptr_t CurrentBreak() {
  return reinterpret_cast<uintptr_t>(real.sbrk ? real.sbrk(0) : nullptr);
}

void* BootstrapAlloc(size_t size) {
  size = (size + 15) & ~size_t{15};
  size_t offset = g_pool_used.fetch_add(size);
  if (offset + size > sizeof g_pool) return nullptr;
  return g_pool + offset;
}

bool IsBootstrapPointer(const void* p) {
  auto* c = static_cast<const unsigned char*>(p);
  return c >= g_pool && c < g_pool + sizeof g_pool;
}

size_t BootstrapCopyLimit(const void* p, size_t size) {
  size_t room = static_cast<size_t>(g_pool + sizeof g_pool -
                                    static_cast<const unsigned char*>(p));
  return size < room ? size : room;
}

}  // namespace pagewaste::shim
