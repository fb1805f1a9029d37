// What /proc says about another process, for the ptrace backend: its module
// map (from /proc/PID/maps and the ELF program headers of its files: what
// the preload shim gets from dl_iterate_phdr), its executable, command line,
// thread group, parent, environment, credentials and open traces.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "reader/trace_reader.h"

namespace pagewaste::ptrace {

// Executable file mappings of pid, grouped by file, with the load bias that
// maps the file's virtual addresses to the process's. Empty if the process
// is gone.
std::vector<ModuleInfo> ReadModuleMap(pid_t pid);

// The module map of a process gone before /proc was read: its executable
// alone, placed from its ELF program headers so that its lowest executable
// segment starts at start_code (the kernel's mm->start_code); empty if the
// file cannot be read.
std::vector<ModuleInfo> ExecutableModuleMap(const std::string& path, uint64_t start_code);

std::string ExecutablePath(pid_t pid);                 // empty if gone
std::vector<std::string> ReadCmdline(pid_t pid);
pid_t ThreadGroupOf(pid_t tid);                        // tid itself if unknown
pid_t ParentOf(pid_t pid);                             // 0 if unknown
uid_t EffectiveUidOf(pid_t pid);                       // -1 if unknown
gid_t EffectiveGidOf(pid_t pid);                       // -1 if unknown

// Whether pid's image was exec'd in secure mode (AT_SECURE in its auxiliary
// vector: set-uid, set-gid or file capabilities): its loader then ignores
// LD_PRELOAD as the shim is given it.
bool RunsInSecureMode(pid_t pid);

// A capability set of pid ("CapPrm", "CapEff") from /proc/PID/status.
std::optional<uint64_t> CapabilitiesOf(pid_t pid, const std::string& set);

// What exec of the file at path would give a process that runs as euid and
// egid with the permitted capabilities `permitted`: "set-uid (uid 0)",
// "set-gid (gid 42)" or "given file capabilities"; empty when nothing it
// lacks.
std::string PrivilegesGranted(const std::string& path, uid_t euid, gid_t egid,
                              uint64_t permitted);

// What pid's executable would have given it at exec and it did not get
// (the kernel withholds it from a traced process whose tracer may not
// trace it so, or under PR_SET_NO_NEW_PRIVS), as PrivilegesGranted says
// it. Read at the exec stop, before the new image has run.
std::string PrivilegesWithheld(pid_t pid);

// Whether pid's environment has LD_PRELOAD naming the file at shim_path.
bool PreloadsShim(pid_t pid, const std::string& shim_path);

// The path of the trace of session_id that pid holds open for itself (the
// shim's file: its header names pid), or empty. Read while pid is stopped
// at its exit, before its files are closed.
std::string FindOpenTrace(pid_t pid, uint64_t session_id);

}  // namespace pagewaste::ptrace
