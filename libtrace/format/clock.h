// CLOCK_MONOTONIC in nanoseconds, through the vDSO (no system call): the
// clock of every timestamp and duration in a trace.
#pragma once

#include <time.h>

#include <cstdint>

namespace pagewaste {

inline uint64_t MonotonicNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// CLOCK_MONOTONIC_COARSE: the same clock as of the last timer tick. Reading
// it costs a few nanoseconds (a tenth of the fine clock's), and a burst of
// events reads the same value, so that the trace needs one Time record for
// the burst. Event times in the shim's traces come from here.
inline uint64_t CoarseMonotonicNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// How far apart the coarse clock's values are (the kernel's tick).
inline uint32_t CoarseResolutionNs() {
  struct timespec ts;
  if (clock_getres(CLOCK_MONOTONIC_COARSE, &ts) != 0 || ts.tv_sec) return 1;
  return static_cast<uint32_t>(ts.tv_nsec);
}

}  // namespace pagewaste
