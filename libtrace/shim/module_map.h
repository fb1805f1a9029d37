// Writes the loaded modules (executable, shared libraries, vdso) with their
// load bias and executable segments, so that stacks can be symbolized after
// the process is gone. Written at start and after every dlopen/dlclose.
#pragma once

#include <cstdint>

#include "producer/record_writer.h"

namespace pagewaste::shim {

// exe_path names the main program (dl_iterate_phdr reports it as "");
// seq is the ModuleMap record's place in the process's order (thread
// chunks).
void WriteModuleMap(RecordWriter* writer, uint64_t generation, uint64_t seq,
                    const char* exe_path);

// The executable segment holding an address.
struct CodeRange {
  uintptr_t start = 0;
  uintptr_t end = 0;
  bool Contains(uintptr_t ip) const { return ip >= start && ip < end; }
};
CodeRange FindCodeContaining(const void* address);

}  // namespace pagewaste::shim
