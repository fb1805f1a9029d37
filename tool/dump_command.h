// `pagewaste dump`: every record of a trace, one per line, for debugging the
// shim and for golden tests of the writer.
#pragma once

#include <string>

namespace pagewaste {

// Writes the dump to *out; returns an exit code (exit_codes.h), with a
// message in *err when it is not kOk.
int DumpTrace(const std::string& path, std::string* out, std::string* err);

}  // namespace pagewaste
