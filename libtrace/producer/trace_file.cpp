// One trace file being written: sink, chunk buffer, writer and stack table
// together (trace_file.h).
#include "trace_file.h"

#include <time.h>

#include <cerrno>

namespace pagewaste::producer {

bool TraceFile::WriteHeader(HeaderInfo header) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  header.process.start_realtime_ns =
      static_cast<uint64_t>(now.tv_sec) * 1000000000ull + static_cast<uint64_t>(now.tv_nsec);
  // The header is at most a path and argv; the chunk buffer is idle before
  // the first record.
  size_t n = EncodeHeader(header, buffer_, sizeof buffer_);
  if (sink_.WriteRaw(buffer_, n)) return true;
  int saved = errno;
  sink_.Remove();
  errno = saved;
  return false;
}

}  // namespace pagewaste::producer
