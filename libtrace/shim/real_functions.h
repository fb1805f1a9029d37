// Pointers to the functions the shim interposes, resolved with
// dlsym(RTLD_NEXT). Generated from hooks.def.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace pagewaste::shim {

struct RealFunctions {
#define PW_HOOK(ret, name, params, policy) ret(*name) params;
#include "hooks.def"
#undef PW_HOOK
};

extern RealFunctions real;

// Resolves every entry. Returns false if a required one is missing; *missing
// then names it. Must run with the recursion guard held: dlsym may allocate,
// and those allocations are served from the bootstrap pool.
bool ResolveRealFunctions(const char** missing);

// The program break as the C library knows it; sbrk(0) makes no system
// call once the library has read the break. 0 without an sbrk.
uintptr_t CurrentBreak();

// Memory for the loader's allocations before the real calloc is known.
void* BootstrapAlloc(size_t size);
bool IsBootstrapPointer(const void* p);
// How many of size bytes at bootstrap pointer p lie inside the pool.
size_t BootstrapCopyLimit(const void* p, size_t size);

}  // namespace pagewaste::shim
