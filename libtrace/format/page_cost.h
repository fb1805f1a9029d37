// Page arithmetic: what a request costs when it is served in whole pages.
// Shared by the shim (which records mapped bytes) and the replay (which
// derives page bytes and waste for direct mappings and what-if page sizes).
#pragma once

#include <cstdint>

namespace pagewaste {

// Bytes of whole pages that `bytes` occupies. page_size must be a power of two.
inline constexpr uint64_t PageBytes(uint64_t bytes, uint64_t page_size) {
  return (bytes + page_size - 1) & ~(page_size - 1);
}

// Pages' bytes minus requested bytes: the cost of page rounding alone.
inline constexpr uint64_t PageWaste(uint64_t requested, uint64_t page_size) {
  return PageBytes(requested, page_size) - requested;
}

inline constexpr bool IsPowerOfTwo(uint64_t v) { return v && !(v & (v - 1)); }

}  // namespace pagewaste
