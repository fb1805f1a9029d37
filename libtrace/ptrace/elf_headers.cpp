#include "elf_headers.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <vector>

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

std::string ReadBuildId(const std::string& path) {
  ElfHeaders elf;
  if (!ReadElfHeaders(path, &elf)) return {};
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::string id;
  for (const Elf64_Phdr& ph : elf.program) {
    if (ph.p_type != PT_NOTE || ph.p_filesz > (1u << 20)) continue;
    std::vector<uint8_t> notes(ph.p_filesz);
    if (pread(fd, notes.data(), notes.size(), static_cast<off_t>(ph.p_offset)) !=
        static_cast<ssize_t>(notes.size()))
      continue;
    // Each note: namesz, descsz, type, then name and desc, each 4-aligned.
    size_t at = 0;
    while (id.empty() && at + sizeof(Elf64_Nhdr) <= notes.size()) {
      Elf64_Nhdr note;
      memcpy(&note, notes.data() + at, sizeof note);
      size_t name_at = at + sizeof note;
      size_t desc_at = name_at + ((note.n_namesz + 3) & ~size_t{3});
      size_t next = desc_at + ((note.n_descsz + 3) & ~size_t{3});
      if (next > notes.size()) break;
      if (note.n_type == NT_GNU_BUILD_ID && note.n_namesz == 4 &&
          memcmp(notes.data() + name_at, "GNU", 4) == 0) {
        static const char kHex[] = "0123456789abcdef";
        for (size_t i = 0; i < note.n_descsz; ++i) {
          id += kHex[notes[desc_at + i] >> 4];
          id += kHex[notes[desc_at + i] & 15];
        }
      }
      at = next;
    }
    if (!id.empty()) break;
  }
  close(fd);
  return id;
}

}  // namespace pagewaste::ptrace
