// The ELF headers of a program file, and the notes read from them: build id,
// interpreter, Go (elf_headers.h).
#include "elf_headers.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
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

namespace {

// The description of the first note of the given name and type in the ELF
// file's PT_NOTE segments; false when it has none or cannot be read.
bool FindNote(const std::string& path, const char* name, uint32_t type, std::vector<uint8_t>* desc) {
  ElfHeaders elf;
  if (!ReadElfHeaders(path, &elf)) return false;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const size_t name_size = strlen(name) + 1;
  bool found = false;
  for (const Elf64_Phdr& ph : elf.program) {
    if (found) break;
    if (ph.p_type != PT_NOTE || ph.p_filesz > (1u << 20)) continue;
    std::vector<uint8_t> notes(ph.p_filesz);
    if (pread(fd, notes.data(), notes.size(), static_cast<off_t>(ph.p_offset)) !=
        static_cast<ssize_t>(notes.size()))
      continue;
    // Each note: namesz, descsz, type, then name and desc, each 4-aligned.
    size_t at = 0;
    while (!found && at + sizeof(Elf64_Nhdr) <= notes.size()) {
      Elf64_Nhdr note;
      memcpy(&note, notes.data() + at, sizeof note);
      size_t name_at = at + sizeof note;
      size_t desc_at = name_at + ((note.n_namesz + 3) & ~size_t{3});
      size_t next = desc_at + ((note.n_descsz + 3) & ~size_t{3});
      if (next > notes.size()) break;
      // The name is NUL-terminated and may be padded with more NULs (Go
      // writes "Go\0\0" with a size of 4).
      if (note.n_type == type && note.n_namesz >= name_size &&
          memcmp(notes.data() + name_at, name, name_size) == 0) {
        desc->assign(notes.begin() + static_cast<ptrdiff_t>(desc_at),
                     notes.begin() + static_cast<ptrdiff_t>(desc_at + note.n_descsz));
        found = true;
      }
      at = next;
    }
  }
  close(fd);
  return found;
}

}  // namespace

std::string ReadBuildId(const std::string& path) {
  std::vector<uint8_t> desc;
  if (!FindNote(path, "GNU", NT_GNU_BUILD_ID, &desc)) return {};
  static const char kHex[] = "0123456789abcdef";
  std::string id;
  for (uint8_t byte : desc) {
    id += kHex[byte >> 4];
    id += kHex[byte & 15];
  }
  return id;
}

bool IsGoProgram(const std::string& path) {
  // The Go linker's build id note: name "Go", type 4 (NT_GO_BUILD_ID).
  std::vector<uint8_t> desc;
  return FindNote(path, "Go", 4, &desc);
}

}  // namespace pagewaste::ptrace
