#include "elf_headers.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

namespace pagewaste::ptrace {

bool ReadElfHeaders(const std::string& path, ElfHeaders* h) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = pread(fd, &h->file, sizeof h->file, 0) == static_cast<ssize_t>(sizeof h->file) &&
            memcmp(h->file.e_ident, ELFMAG, SELFMAG) == 0 &&
            h->file.e_ident[EI_CLASS] == ELFCLASS64;
  h->program.clear();
  for (int i = 0; ok && i < h->file.e_phnum; ++i) {
    Elf64_Phdr ph;
    off_t at = static_cast<off_t>(h->file.e_phoff + static_cast<uint64_t>(i) * sizeof ph);
    if (pread(fd, &ph, sizeof ph, at) != static_cast<ssize_t>(sizeof ph)) break;
    h->program.push_back(ph);
  }
  close(fd);
  return ok;
}

bool HasInterpreter(const std::string& path) {
  ElfHeaders elf;
  if (!ReadElfHeaders(path, &elf)) return true;
  for (const Elf64_Phdr& ph : elf.program)
    if (ph.p_type == PT_INTERP) return true;
  return false;
}

}  // namespace pagewaste::ptrace
