// Unsigned LEB128 varints and zigzag signed integers, the building blocks of
// every trace record (format.h).
//
// A varint stores 7 bits per byte, least significant group first; the high
// bit of a byte says another byte follows. 300 = 0b1_0010_1100 encodes as
// AC 02. A uint64_t never takes more than 10 bytes. Zigzag maps signed to
// unsigned so that small magnitudes stay small: 0 -> 0, -1 -> 1, 1 -> 2,
// -2 -> 3. Both encoder and decoder are allocation-free so the shim can use
// them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pagewaste {

inline constexpr size_t kMaxVarintBytes = 10;

// Writes v at out (which must have kMaxVarintBytes of room); returns the
// number of bytes written.
inline size_t EncodeVarint(uint64_t v, uint8_t* out) {
  size_t n = 0;
  while (v >= 0x80) {
    out[n++] = static_cast<uint8_t>(v) | 0x80;
    v >>= 7;
  }
  out[n++] = static_cast<uint8_t>(v);
  return n;
}

inline uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}

inline int64_t UnZigZag(uint64_t v) {
  return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
}

// Decodes a varint from [*p, end). On success advances *p and returns true;
// returns false if the input ends inside the varint or it exceeds 64 bits.
inline bool DecodeVarint(const uint8_t** p, const uint8_t* end, uint64_t* v) {
  uint64_t result = 0;
  const uint8_t* q = *p;
  for (int shift = 0; shift < 64; shift += 7) {
    if (q == end) return false;
    uint8_t byte = *q++;
    if (shift == 63 && byte > 1) return false;
    result |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if (!(byte & 0x80)) {
      *p = q;
      *v = result;
      return true;
    }
  }
  return false;
}

}  // namespace pagewaste
