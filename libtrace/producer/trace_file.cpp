#include "trace_file.h"

#include <time.h>

namespace pagewaste::producer {

void TraceFile::WriteHeader(HeaderInfo header) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  header.process.start_realtime_ns =
      static_cast<uint64_t>(now.tv_sec) * 1000000000ull + static_cast<uint64_t>(now.tv_nsec);
  // The header is at most a path and argv; the chunk buffer is idle before
  // the first record.
  size_t n = EncodeHeader(header, buffer_, sizeof buffer_);
  sink_.WriteRaw(buffer_, n);
}

}  // namespace pagewaste::producer
