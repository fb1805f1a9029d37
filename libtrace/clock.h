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

}  // namespace pagewaste
