// What /proc says about another process: its module map and its identity
// (proc_maps.h).
#include "proc_maps.h"

#include "elf/elf_headers.h"
#include "format/format.h"
#include "format/little_endian.h"

#include <dirent.h>
#include <elf.h>
#include <fcntl.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

namespace pagewaste::ptrace {
namespace {

// The load bias of a file mapped at `start` from file offset `offset`: the
// PT_LOAD segment that holds that offset says which virtual address the
// mapping's first byte has in the file's own view.
bool LoadBias(const std::string& path, uint64_t start, uint64_t offset, uint64_t* bias) {
  ElfHeaders elf;
  if (!ReadElfHeaders(path, &elf)) return false;
  for (const Elf64_Phdr& ph : elf.program) {
    if (ph.p_type == PT_LOAD && (ph.p_offset & ~uint64_t{0xfff}) == offset) {
      *bias = start - (ph.p_vaddr - (ph.p_offset - offset));
      return true;
    }
  }
  return false;
}

}  // namespace

namespace {

// The index-th number of a field of /proc/PID/status ("Tgid", "PPid";
// "Uid" has real, effective, saved and filesystem ids), or fallback.
long StatusField(pid_t pid, const std::string& field, long fallback, int index = 0) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) != 0) continue;
    std::istringstream numbers(line.substr(field.size() + 1));
    long value = fallback;
    for (int i = 0; i <= index; ++i)
      if (!(numbers >> value)) return fallback;
    return value;
  }
  return fallback;
}

}  // namespace

pid_t ThreadGroupOf(pid_t tid) { return static_cast<pid_t>(StatusField(tid, "Tgid", tid)); }
pid_t ParentOf(pid_t pid) { return static_cast<pid_t>(StatusField(pid, "PPid", 0)); }
uid_t EffectiveUidOf(pid_t pid) { return static_cast<uid_t>(StatusField(pid, "Uid", -1, 1)); }
gid_t EffectiveGidOf(pid_t pid) { return static_cast<gid_t>(StatusField(pid, "Gid", -1, 1)); }

bool RunsInSecureMode(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/auxv", std::ios::binary);
  uint64_t entry[2];
  while (in.read(reinterpret_cast<char*>(entry), sizeof entry) && entry[0] != AT_NULL)
    if (entry[0] == AT_SECURE) return entry[1] != 0;
  return false;
}

namespace {

// The permitted capabilities a file's security.capability attribute grants
// (VFS_CAP_REVISION_2 and 3 keep them in two 32-bit halves), 0 if none.
uint64_t FilePermittedCapabilities(const std::string& path) {
  uint32_t data[6] = {};  // magic_etc, {permitted, inheritable} x 2[, rootid]
  ssize_t n = getxattr(path.c_str(), "security.capability", data, sizeof data);
  if (n < static_cast<ssize_t>(sizeof(uint32_t) * 3)) return 0;
  uint64_t permitted = data[1];
  if (n >= static_cast<ssize_t>(sizeof(uint32_t) * 5)) permitted |= uint64_t{data[3]} << 32;
  return permitted;
}

}  // namespace

std::optional<uint64_t> CapabilitiesOf(pid_t pid, const std::string& set) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(set + ":", 0) == 0) return strtoull(line.c_str() + set.size() + 1, nullptr, 16);
  return std::nullopt;
}

std::string PrivilegesGranted(const std::string& path, uid_t euid, gid_t egid,
                              uint64_t permitted) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return {};
  if ((st.st_mode & S_ISUID) && st.st_uid != euid)
    return "set-uid (uid " + std::to_string(st.st_uid) + ")";
  // A set-gid bit without group execute marks mandatory locking, not an
  // identity.
  if ((st.st_mode & S_ISGID) && (st.st_mode & S_IXGRP) && st.st_gid != egid)
    return "set-gid (gid " + std::to_string(st.st_gid) + ")";
  if (FilePermittedCapabilities(path) & ~permitted) return "given file capabilities";
  return {};
}

std::string PrivilegesWithheld(pid_t pid) {
  return PrivilegesGranted("/proc/" + std::to_string(pid) + "/exe", EffectiveUidOf(pid),
                           EffectiveGidOf(pid), CapabilitiesOf(pid, "CapPrm").value_or(0));
}

bool PreloadsShim(pid_t pid, const std::string& shim_path) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
  std::string entry;
  while (std::getline(in, entry, '\0')) {
    if (entry.rfind("LD_PRELOAD=", 0) != 0) continue;
    // Entries are separated by colons or spaces (ld.so(8)).
    std::string list = entry.substr(11);
    for (char& c : list)
      if (c == ':') c = ' ';
    std::istringstream names(list);
    for (std::string name; names >> name;)
      if (name == shim_path) return true;
    return false;
  }
  return false;
}

std::string FindOpenTrace(pid_t pid, uint64_t session_id) {
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* fds = opendir(dir.c_str());
  if (!fds) return {};
  std::string found;
  while (struct dirent* e = readdir(fds)) {
    if (e->d_name[0] == '.') continue;
    std::string link = dir + "/" + e->d_name;
    // Regular files only: opening a device or a FIFO can have effects.
    struct stat st;
    if (stat(link.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    int fd = open(link.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) continue;
    uint8_t fixed[format::kFixedHeaderSize];
    bool ours = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
                pread(fd, fixed, sizeof fixed, 0) == static_cast<ssize_t>(sizeof fixed) &&
                memcmp(fixed, format::kMagic, sizeof format::kMagic) == 0 &&
                GetLE(fixed + 16, 4) == static_cast<uint32_t>(pid) &&
                GetLE(fixed + 24, 8) == session_id;
    close(fd);
    if (!ours) continue;
    char target[4096];
    ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
    if (n > 0) found.assign(target, static_cast<size_t>(n));
    break;
  }
  closedir(fds);
  return found;
}

std::vector<ModuleInfo> ExecutableModuleMap(const std::string& path, uint64_t start_code) {
  ElfHeaders elf;
  if (!ReadElfHeaders(path, &elf)) return {};
  uint64_t lowest = UINT64_MAX;
  for (const Elf64_Phdr& ph : elf.program)
    if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X) && ph.p_vaddr < lowest) lowest = ph.p_vaddr;
  if (lowest == UINT64_MAX || start_code < lowest) return {};
  ModuleInfo m;
  m.path = path;
  m.load_bias = start_code - lowest;
  uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  for (const Elf64_Phdr& ph : elf.program) {
    if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
    uint64_t start = (ph.p_vaddr + m.load_bias) / page * page;
    uint64_t end = (ph.p_vaddr + m.load_bias + ph.p_memsz + page - 1) / page * page;
    m.segments.push_back({start, end - start});
  }
  return {m};
}

std::string ExecutablePath(pid_t pid) {
  char buf[4096];
  std::string link = "/proc/" + std::to_string(pid) + "/exe";
  ssize_t n = readlink(link.c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

std::vector<std::string> ReadCmdline(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::vector<std::string> argv;
  std::string arg;
  while (std::getline(in, arg, '\0')) argv.push_back(arg);
  return argv;
}

std::vector<ModuleInfo> ReadModuleMap(pid_t pid) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  std::map<std::string, ModuleInfo> by_path;
  std::vector<std::string> order;
  std::string line;
  while (std::getline(maps, line)) {
    std::istringstream in(line);
    std::string range, perms, offset_hex, dev, inode, path;
    in >> range >> perms >> offset_hex >> dev >> inode;
    std::getline(in >> std::ws, path);
    if (perms.size() < 3 || perms[2] != 'x' || path.empty() || path[0] != '/') continue;
    uint64_t start = std::stoull(range.substr(0, range.find('-')), nullptr, 16);
    uint64_t end = std::stoull(range.substr(range.find('-') + 1), nullptr, 16);
    uint64_t offset = std::stoull(offset_hex, nullptr, 16);
    auto [it, fresh] = by_path.try_emplace(path);
    ModuleInfo& m = it->second;
    if (fresh) {
      m.path = path;
      order.push_back(path);
      if (!LoadBias(path, start, offset, &m.load_bias)) m.load_bias = start - offset;
    }
    if (m.segments.size() < kMaxModuleSegments) m.segments.push_back({start, end - start});
  }
  std::vector<ModuleInfo> modules;
  for (const std::string& path : order) modules.push_back(by_path[path]);
  return modules;
}

}  // namespace pagewaste::ptrace
