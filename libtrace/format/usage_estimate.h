// What a mapping was used for, estimated when it is unmapped: the pages
// that were ever made resident, and the extent up to the last non-zero
// byte. A page allocator rounds a 2-byte request up to a page before it
// calls mmap, so the request itself is not in the system call; this is what
// shows the waste instead.
//
// Bounded: pages that are not resident are never read (so never faulted
// in), and at most kScanCap bytes are read per mapping, from the end of the
// last resident page backwards. Memory is read with process_vm_readv, which
// fails cleanly on a page that is not readable (PROT_NONE) instead of
// faulting. Allocation-free: the shim uses it too.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cstdint>
#include <cstring>

#include "events.h"

namespace pagewaste {

struct UsageEstimate {
  uint64_t resident_pages = 0;
  // Offset of the last non-zero byte + 1, counting only resident pages
  // before it (see below); 0 if none seen.
  uint64_t used_bytes = 0;
};

inline constexpr uint64_t kScanCap = 64 << 10;

// Puts a measurement on the Munmap record that carries it (format.h).
inline void AttachUsage(const UsageEstimate& usage, MunmapEvent* e) {
  e->flags |= format::kFlagUsageMeasured;
  e->resident_pages = usage.resident_pages;
  e->used_bytes = usage.used_bytes;
}

// resident(first_page, count, out) fills out[i] (1 = resident) for `count`
// pages from page index first_page of the mapping, returning false on
// failure. The mapping is [start, start + length) in process pid.
template <typename Resident>
UsageEstimate EstimateUsage(pid_t pid, uint64_t start, uint64_t length, uint64_t page_size,
                            Resident resident) {
  UsageEstimate u;
  uint64_t pages = (length + page_size - 1) / page_size;
  constexpr uint64_t kBlock = 4096;  // pages per residency query
  unsigned char flags[kBlock];
  uint64_t last_resident = 0;  // index + 1
  uint64_t last_block = 0;     // the first page of the last block queried
  for (uint64_t first = 0; first < pages; first += kBlock) {
    last_block = first;
    uint64_t count = pages - first < kBlock ? pages - first : kBlock;
    if (!resident(first, count, flags)) return u;
    for (uint64_t i = 0; i < count; ++i) {
      if (flags[i] & 1) {
        ++u.resident_pages;
        last_resident = first + i + 1;
      }
    }
  }
  // Backwards from the end of the last resident page, page by page, while
  // the pages stay resident and the cap allows.
  unsigned char buffer[4096];
  uint64_t scanned = 0;
  for (uint64_t page = last_resident; page > 0 && scanned < kScanCap; --page) {
    uint64_t offset = (page - 1) * page_size;
    uint64_t size = page_size < sizeof buffer ? page_size : sizeof buffer;
    // Residency: from the last block's answer where it covers the page
    // (most mappings are one block), else asked again.
    unsigned char is_resident = 0;
    if (page - 1 >= last_block) {
      is_resident = flags[page - 1 - last_block];
    } else if (!resident(page - 1, 1, &is_resident)) {
      break;
    }
    if (!(is_resident & 1)) break;
    for (uint64_t end = offset + page_size; end > offset && scanned < kScanCap; end -= size) {
      uint64_t from = end - size;
      struct iovec local = {buffer, size};
      struct iovec remote = {reinterpret_cast<void*>(start + from), size};
      if (process_vm_readv(pid, &local, 1, &remote, 1, 0) != static_cast<ssize_t>(size)) return u;
      scanned += size;
      // The last non-zero word, then the byte in it.
      auto word = [&](uint64_t index) {
        uint64_t v;
        memcpy(&v, buffer + 8 * index, 8);
        return v;
      };
      uint64_t w = size / 8;
      while (w > 0 && !word(w - 1)) --w;
      if (w == 0) continue;
      for (uint64_t i = w * 8; i > (w - 1) * 8; --i) {
        if (buffer[i - 1]) {
          // The extent up to that byte, counting only what resident pages
          // can hold: pages never made resident were never written, so a
          // sparse reservation touched far into it has used its resident
          // pages before this one and this one up to the byte.
          uint64_t extent = from + i;
          uint64_t dense = (u.resident_pages - 1) * page_size + (extent - offset);
          u.used_bytes = extent < dense ? extent : dense;
          if (u.used_bytes > length) u.used_bytes = length;
          return u;
        }
      }
    }
  }
  return u;
}

}  // namespace pagewaste
