// The ELF file header and program headers of a 64-bit ELF file, for the
// questions the CLI and the ptrace backend ask of a program before or while
// tracing it: is it dynamically linked (PT_INTERP), is it PIE (e_type),
// where does a mapped segment sit (PT_LOAD).
#pragma once

#include <elf.h>

#include <string>
#include <vector>

namespace pagewaste::ptrace {

struct ElfHeaders {
  Elf64_Ehdr file;
  std::vector<Elf64_Phdr> program;
};

// False if path cannot be read or is not a 64-bit ELF file.
bool ReadElfHeaders(const std::string& path, ElfHeaders* headers);

}  // namespace pagewaste::ptrace
