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

// Whether the program at path is dynamically linked (has a PT_INTERP
// header): the dynamic loader runs first and preloads the shim. A file that
// is not ELF (a script, whose interpreter is) or cannot be read (exec will
// say why) counts as dynamic.
bool HasInterpreter(const std::string& path);

// The GNU build id of the ELF file at path (its NT_GNU_BUILD_ID note), in
// hex; empty when it has none or cannot be read.
std::string ReadBuildId(const std::string& path);

// Whether the ELF file at path was linked by Go (it has Go's build id note):
// its runtime runs code on other stacks than the goroutine's.
bool IsGoProgram(const std::string& path);

}  // namespace pagewaste::ptrace
