// libFuzzer entry: any bytes, read as a trace (structure only, as run's
// symbol embedding reads it, and whole), replayed and written in every
// output format (text, JSON, folded, pprof, HTML) and dumped, all in
// memory. A trace from an untrusted machine (a CI artifact) goes through
// exactly this; what must hold is no crash, no undefined behaviour, no leak
// and memory bounded by what the input could legitimately describe (the
// sanitizers and libFuzzer's -rss_limit_mb check those). Seeded with real
// traces of every backend by `make fuzz`, and fuzz/corpus/.
//
// With PAGEWASTE_FUZZ_MODULES naming a directory (fuzz/run makes one, with
// copies of the test programs and the C library), the trace is also
// symbolized, each module it names looked for by its file name in that
// sandbox: the input names any path, and only the sandbox's files are read.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "commands/dump_command.h"
#include "render/render.h"
#include "replay/replay.h"
#include "reader/trace_reader.h"

namespace {

// The structure-only read run and completion use (events skipped over).
class Structure : public pagewaste::RecordVisitor {
 public:
  bool WantsEvents() const override { return false; }
};

FILE* g_null = nullptr;
std::string g_modules;  // the sandbox of module files; empty: no symbolization

void Replay(const std::vector<uint8_t>& bytes, bool symbolize) {
  using namespace pagewaste;
  ReplayOptions options;
  options.symbolize = symbolize;
  options.module_files.directory = g_modules;
  options.top = 20;
  std::vector<Report> reports(1);
  std::string err;
  if (!ReplaySource(MemorySource(bytes), "fuzz.trace", bytes.size(), options, &reports[0], &err))
    return;
  RenderJson(reports, {});
  RenderText(reports, {});
  if (symbolize) return;  // the formats below render the same model again
  Render(FoldedWriter("page_waste_bytes").get(), reports);
  Render(PprofWriter("page_waste_bytes").get(), reports);
  Render(HtmlWriter().get(), reports);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_null = fopen("/dev/null", "w");
  if (const char* dir = getenv("PAGEWASTE_FUZZ_MODULES")) g_modules = dir;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pagewaste;
  std::vector<uint8_t> bytes(data, data + size);
  {
    TraceReader reader(MemorySource(bytes));
    TraceHeader header;
    std::string why;
    Structure structure;
    if (reader.ReadHeader(&header, &why)) reader.ReadRecords(&structure);
  }
  std::string err;
  DumpSource(MemorySource(bytes), "fuzz.trace", g_null, &err);
  // Module paths in the input are not ours to open: only the sandbox's.
  Replay(bytes, false);
  if (!g_modules.empty()) Replay(bytes, true);
  return 0;
}
