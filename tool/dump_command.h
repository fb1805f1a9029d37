// `pagewaste dump`: every record of a trace, one per line, for debugging the
// shim and for golden tests of the writer.
#pragma once

#include <cstdio>
#include <string>

namespace pagewaste {

// Writes the dump to out as it reads (memory does not grow with the
// trace); returns an exit code (exit_codes.h), with a message in *err when
// it is not kOk. What was read before a damaged record is written.
int DumpTrace(const std::string& path, FILE* out, std::string* err);

}  // namespace pagewaste
