// libFuzzer entry: any bytes, read as a trace (structure only, as run's
// symbol embedding reads it, and whole), replayed and rendered as text and
// JSON, all in memory. A trace from an untrusted machine (a CI
// artifact) goes through exactly this; what must hold is no crash, no
// undefined behaviour, no leak and memory bounded by what the input could
// legitimately describe (the sanitizers and libFuzzer's -rss_limit_mb check
// those). Seeded with real traces by `make fuzz`.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "render.h"
#include "replay.h"
#include "trace_reader.h"

namespace {

// The structure-only read run and completion use (events skipped over).
class Structure : public pagewaste::RecordVisitor {
 public:
  bool WantsEvents() const override { return false; }
};

}  // namespace

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
  ReplayOptions options;
  options.symbolize = false;  // module paths in the input are not ours to open
  options.top = 20;
  std::vector<Report> reports(1);
  std::string err;
  if (!ReplaySource(MemorySource(std::move(bytes)), "fuzz.trace", size, options, &reports[0],
                    &err))
    return 0;
  RenderJson(reports, {});
  RenderText(reports, {});
  return 0;
}
