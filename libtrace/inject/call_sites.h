// The call sites of a running process's loaded objects: the global offset
// table entries (R_X86_64_JUMP_SLOT and R_X86_64_GLOB_DAT relocations)
// through which code calls a named function. The injected feed library
// points those of the malloc family at its own functions, so that calls
// already bound (or bound at load, under BIND_NOW) reach it, and puts them
// back at detach. Allocation-free; a fixed table remembers what was there.
#pragma once

#include <cstdint>

namespace pagewaste::inject {

struct Redirect {
  const char* name;  // the function called, as the objects name it
  void* target;      // where its calls go instead
};

// Points every entry of every loaded object (but the one holding `self`,
// the vdso and the dynamic loader) that names one of redirects at its
// target; entries already pointing there are left alone, so that it can
// run again after a dlopen. An entry in read-only memory (RELRO) is made
// writable for the write and read-only again. Returns the entries changed.
int RedirectCallSites(const Redirect* redirects, int count, const void* self);

// Points the entries changed back at what they held; returns how many.
int RestoreCallSites();

// After a dlclose: forgets the entries of objects no longer loaded.
void ForgetUnloadedCallSites();

// Entries the table of changed entries had no room for (left unchanged).
uint32_t UnredirectedCallSites();
uint32_t RedirectedCallSites();

}  // namespace pagewaste::inject
