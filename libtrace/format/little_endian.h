// Little-endian integers at fixed widths: the trace header and the chunk
// headers (format.h). Shared by the writer (also in the shim), the reader,
// the compressor and the file sink.
#pragma once

#include <cstdint>
#include <cstring>

namespace pagewaste {

inline uint64_t GetLE(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

inline void PutLE(uint8_t* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
}

// One 32-bit store: a chunk's length, rewritten after every record.
inline void PutLE32(uint8_t* out, uint32_t v) {
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the format is little-endian");
  memcpy(out, &v, sizeof v);
}

// One 64-bit store: a thread chunk's record and gap byte counts together.
inline void PutLE64(uint8_t* out, uint64_t v) {
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the format is little-endian");
  memcpy(out, &v, sizeof v);
}

}  // namespace pagewaste
