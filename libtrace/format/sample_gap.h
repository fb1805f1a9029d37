// The gaps between picks of `--sample BYTES`: a Poisson process over the
// bytes requested, each gap exponential with mean BYTES, drawn from a
// xorshift64* generator whose state the caller keeps (per thread, seeded
// alike on every thread, so that a sampled run of a deterministic program
// is reproducible). Shared by the preload shim and attach's feed library:
// allocation-free, and without libm.
#pragma once

#include <cstdint>
#include <cstring>

namespace pagewaste {

// -ln(u) for u in (0, 1], well enough for drawing gaps: u = m 2^e with m in
// [1, 2), ln m = 2 atanh((m - 1) / (m + 1)) by its series.
inline double MinusLog(double u) {
  uint64_t bits;
  memcpy(&bits, &u, sizeof bits);
  int exponent = static_cast<int>((bits >> 52) & 0x7ff) - 1023;
  bits = (bits & ((uint64_t{1} << 52) - 1)) | (uint64_t{1023} << 52);
  double m;
  memcpy(&m, &bits, sizeof m);
  double t = (m - 1) / (m + 1);
  double t2 = t * t;
  double ln_m = 2 * t * (1 + t2 * (1.0 / 3 + t2 * (1.0 / 5 + t2 * (1.0 / 7 + t2 / 9))));
  return -(ln_m + exponent * 0.6931471805599453);
}

// The gap to the next picked byte (at least 1), from the generator's state.
inline int64_t NextSampleGap(uint64_t* state, uint64_t interval) {
  uint64_t& s = *state;
  if (!s) s = 0x9E3779B97F4A7C15ull;
  s ^= s >> 12;
  s ^= s << 25;
  s ^= s >> 27;
  uint64_t r = s * 0x2545F4914F6CDD1Dull;
  double u = (static_cast<double>(r >> 11) + 1) / 9007199254740992.0;  // (0, 1]
  return static_cast<int64_t>(MinusLog(u) * static_cast<double>(interval)) + 1;
}

}  // namespace pagewaste
