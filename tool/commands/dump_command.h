// `pagewaste dump`: every record of a trace, one per line, for debugging the
// shim and for golden tests of the writer.
#pragma once

#include <cstdio>
#include <memory>
#include <string>

#include "reader/trace_reader.h"

namespace pagewaste {

// Writes the dump to out as it reads (memory does not grow with the
// trace); returns an exit code (exit_codes.h), with a message in *err when
// it is not kOk. What was read before a damaged record is written.
int DumpTrace(const std::string& path, FILE* out, std::string* err);
// The same from any byte source (the fuzzer's memory); name stands for the
// path in messages.
int DumpSource(std::unique_ptr<ByteSource> source, const std::string& name, FILE* out,
               std::string* err);

}  // namespace pagewaste
