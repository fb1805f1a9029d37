// Replays one trace into a Report: keeps the live set of heap blocks and
// mappings, charges every event to its call site, and symbolizes the sites
// that will be shown. Memory grows with live allocations and unique stacks,
// not with the number of events.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "model/program_code.h"
#include "model/report_model.h"
#include "symbols/symbolizer.h"
#include "reader/trace_reader.h"
#include "model/what_if.h"

namespace pagewaste {

struct ReplayOptions {
  size_t top = 0;         // call sites to keep and symbolize; 0 = all
  bool symbolize = true;
  // What-if page sizes and allocator models; both empty: the standard set
  // (4 KiB, 16 KiB, 64 KiB, 2 MiB and the traced machine's; every model).
  std::vector<uint64_t> what_if_page_sizes;
  std::vector<AllocatorModel> what_if_models;
  size_t timeline_samples = 60;  // about this many (at most twice as many)
  // Show progress on stderr for traces of at least this many bytes (0: never).
  uint64_t progress_from_bytes = 0;
  // Which frames are the program's own code (program_code.h).
  CodeRules code;
  // Where and as whom module files are read (symbolizer.h); ReplayTrace
  // reads them as the trace file's owner.
  ModuleFiles module_files;
};

// False with *err when the trace cannot be read at all (missing, empty, not
// a trace, newer version). A truncated or partly corrupt trace replays what
// it holds; report->process.status says so.
bool ReplayTrace(const std::string& path, const ReplayOptions& options,
                 Report* report, std::string* err);

// The same from any byte source (memory, for tests and the fuzzer): name
// stands for the path in the report and messages, size (0: unknown) is for
// progress.
bool ReplaySource(std::unique_ptr<ByteSource> source, const std::string& name, uint64_t size,
                  const ReplayOptions& options, Report* report, std::string* err);

}  // namespace pagewaste
