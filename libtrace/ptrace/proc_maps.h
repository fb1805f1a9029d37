// The module map of another process, from /proc/PID/maps and the ELF
// program headers of its files: what the preload shim gets from
// dl_iterate_phdr, for the ptrace backend.
#pragma once

#include <sys/types.h>

#include <vector>

#include "trace_reader.h"

namespace pagewaste::ptrace {

// Executable file mappings of pid, grouped by file, with the load bias that
// maps the file's virtual addresses to the process's. Empty if the process
// is gone.
std::vector<ModuleInfo> ReadModuleMap(pid_t pid);

}  // namespace pagewaste::ptrace
