// See injector.h.
#include "injector.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <vector>

#include "feed_layout.h"
#include "remote_call.h"

namespace pagewaste::inject {
namespace {

// The values of the default versions of defined functions in an ELF
// file's dynamic symbol table (glibc exports dlopen twice: its own, and a
// compatibility one for programs linked with libdl), by name; a name
// absent is absent from the result. The file is read once.
std::map<std::string, uint64_t> DynamicSymbols(const std::string& path,
                                               const std::set<std::string>& names) {
  std::map<std::string, uint64_t> found;
  std::ifstream in(path, std::ios::binary);
  std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (file.size() < sizeof(Elf64_Ehdr) || memcmp(file.data(), ELFMAG, SELFMAG) != 0) return found;
  Elf64_Ehdr eh;
  memcpy(&eh, file.data(), sizeof eh);
  if (eh.e_shoff + uint64_t{eh.e_shnum} * sizeof(Elf64_Shdr) > file.size()) return found;
  std::vector<Elf64_Shdr> sections(eh.e_shnum);
  memcpy(sections.data(), file.data() + eh.e_shoff, eh.e_shnum * sizeof(Elf64_Shdr));
  const Elf64_Shdr* dynsym = nullptr;
  const Elf64_Shdr* versym = nullptr;
  for (const Elf64_Shdr& s : sections) {
    if (s.sh_type == SHT_DYNSYM) dynsym = &s;
    if (s.sh_type == SHT_GNU_versym) versym = &s;
  }
  if (!dynsym || dynsym->sh_link >= sections.size()) return found;
  const Elf64_Shdr& strtab = sections[dynsym->sh_link];
  if (dynsym->sh_offset + dynsym->sh_size > file.size() ||
      strtab.sh_offset + strtab.sh_size > file.size())
    return found;
  size_t count = dynsym->sh_size / sizeof(Elf64_Sym);
  for (size_t i = 0; i < count; ++i) {
    Elf64_Sym sym;
    memcpy(&sym, file.data() + dynsym->sh_offset + i * sizeof sym, sizeof sym);
    if (sym.st_shndx == SHN_UNDEF || ELF64_ST_TYPE(sym.st_info) != STT_FUNC ||
        sym.st_name >= strtab.sh_size)
      continue;
    std::string name(file.c_str() + strtab.sh_offset + sym.st_name);
    if (!names.count(name) || found.count(name)) continue;
    if (versym && versym->sh_offset + (i + 1) * 2 <= file.size()) {
      uint16_t version;
      memcpy(&version, file.data() + versym->sh_offset + i * 2, 2);
      if (version & 0x8000) continue;  // hidden: not the default version
    }
    found[name] = sym.st_value;
  }
  return found;
}

// Whether the process sees the files and the thread ids we do: the
// library is loaded by path, and the BPF program marks threads by the ids
// the library reads.
bool SameNamespaces(pid_t pid, std::string* err) {
  for (const char* ns : {"mnt", "pid"}) {
    struct stat ours, theirs;
    std::string path = "/proc/" + std::to_string(pid) + "/ns/" + ns;
    if (stat((std::string("/proc/self/ns/") + ns).c_str(), &ours) != 0 ||
        stat(path.c_str(), &theirs) != 0) {
      *err = "cannot read " + path + ": " + strerror(errno);
      return false;
    }
    if (ours.st_ino != theirs.st_ino) {
      *err = std::string("it runs in another ") + (ns[0] == 'm' ? "mount" : "pid") + " namespace";
      return false;
    }
  }
  return true;
}

// Whether the process is stopped (SIGSTOP, or a debugger's): running a
// thread of it to a system call would resume it.
bool Stopped(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() &&
         (stat[paren + 2] == 'T' || stat[paren + 2] == 't');
}

}  // namespace

int InjectFeed(const FeedRequest& request, std::string* err) {
  if (!SameNamespaces(request.pid, err)) return -1;
  if (Stopped(request.pid)) {
    *err = "it is stopped";
    return -1;
  }
  std::map<std::string, uint64_t> at =
      DynamicSymbols(request.libc_path, {"dlopen", "dlsym", "dlerror", "close"});
  if (at.size() != 4) {
    *err = "its C library has no dlopen (glibc before 2.34?)";
    return -1;
  }
  uint64_t bias = request.libc_bias;
  RemoteThread thread(request.pid, request.unsafe_code);
  if (!thread.ok()) {
    *err = thread.error();
    return -1;
  }
  uint64_t library = thread.PushString(request.library);
  uint64_t symbol = thread.PushString(kFeedStartSymbol);
  uint64_t handle = 0;
  if (!library || !symbol ||
      !thread.Call(bias + at["dlopen"], {library, static_cast<uint64_t>(RTLD_NOW)}, &handle)) {
    *err = thread.error();
    return -1;
  }
  if (!handle) {
    uint64_t message = 0;
    thread.Call(bias + at["dlerror"], {}, &message);
    std::string why = thread.ReadString(message);
    *err = "dlopen failed: " + (why.empty() ? request.library : why);
    return -1;
  }
  uint64_t start = 0, result = 0;
  if (!thread.Call(bias + at["dlsym"], {handle, symbol}, &start) || !start ||
      !thread.Call(start, {request.ring_bytes, request.sample_bytes}, &result)) {
    *err = thread.error().empty() ? "the feed library has no entry point" : thread.error();
    return -1;
  }
  int remote_fd = static_cast<int>(static_cast<int32_t>(result));
  if (remote_fd < 0) {
    *err = std::string("the feed did not start: ") + strerror(-remote_fd);
    return -1;
  }
  std::string path = "/proc/" + std::to_string(request.pid) + "/fd/" + std::to_string(remote_fd);
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) *err = std::string("cannot open the feed: ") + strerror(errno);
  // The process keeps the mapping, not the descriptor.
  uint64_t ignored;
  thread.Call(bias + at["close"], {static_cast<uint64_t>(remote_fd)}, &ignored);
  return fd;
}

}  // namespace pagewaste::inject
