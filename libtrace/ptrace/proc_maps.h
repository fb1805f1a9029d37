// What /proc says about another process, for the ptrace backend: its module
// map (from /proc/PID/maps and the ELF program headers of its files: what
// the preload shim gets from dl_iterate_phdr), its executable, command line,
// thread group and parent.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "trace_reader.h"

namespace pagewaste::ptrace {

// Executable file mappings of pid, grouped by file, with the load bias that
// maps the file's virtual addresses to the process's. Empty if the process
// is gone.
std::vector<ModuleInfo> ReadModuleMap(pid_t pid);

std::string ExecutablePath(pid_t pid);                 // empty if gone
std::vector<std::string> ReadCmdline(pid_t pid);
pid_t ThreadGroupOf(pid_t tid);                        // tid itself if unknown
pid_t ParentOf(pid_t pid);                             // 0 if unknown

}  // namespace pagewaste::ptrace
