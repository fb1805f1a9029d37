// How far a compressed chunk may expand: at most kMaxExpansion times its
// payload. A reader refuses a chunk that claims more (a decompression bomb:
// a few KB that would take minutes and gigabytes to replay); the writers
// keep within it by following an unusually small zstd frame with a
// skippable frame of zeros, which zstd passes over. Our own traces compress
// up to about 3,000 times (two million identical malloc/free pairs), so the
// padding costs almost nothing and only there.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "little_endian.h"

namespace pagewaste {

inline constexpr uint64_t kMaxExpansion = 4096;

// zstd's skippable frames: a magic number, a length, and that many bytes.
inline constexpr uint32_t kSkippableFrameMagic = 0x184D2A50;
inline constexpr size_t kSkippableFrameHeader = 8;

// The bytes to add after a payload of `payload` bytes that expands to
// `expanded`, so that it stays within kMaxExpansion: 0, or a whole
// skippable frame.
inline size_t ExpansionPadding(size_t payload, uint64_t expanded) {
  uint64_t least = (expanded + kMaxExpansion - 1) / kMaxExpansion;
  if (payload >= least) return 0;
  return std::max<size_t>(static_cast<size_t>(least - payload), kSkippableFrameHeader);
}

// A skippable frame of `size` bytes (at least kSkippableFrameHeader) at `at`.
inline void WriteSkippableFrame(uint8_t* at, size_t size) {
  PutLE(at, kSkippableFrameMagic, 4);
  PutLE(at + 4, size - kSkippableFrameHeader, 4);
  memset(at + kSkippableFrameHeader, 0, size - kSkippableFrameHeader);
}

}  // namespace pagewaste
