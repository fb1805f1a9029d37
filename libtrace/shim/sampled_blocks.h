// Under sampling (pagewaste run --sample), the addresses of the live blocks
// whose Alloc was recorded, so that their Free is recorded too and no other
// Free is. Open addressing with backward-shift deletion over memory
// reserved once with mmap; the caller serializes Insert and Remove. In
// front of it, a count of the blocks held per bucket of addresses, which
// MaybeHolds reads without the caller's lock: most frees under sampling are
// of blocks never picked, and need not take it.
#pragma once

#include <cstdint>

namespace pagewaste::shim {

class SampledBlocks {
 public:
  static constexpr uint32_t kSlots = 1u << 20;  // 8 MiB reserved, touched as used

  // Reserves the table: one mmap.
  bool Init();
  // False when the table is half full: the block is then not kept, and its
  // Free will not be recorded (half a million picked blocks live at once).
  bool Insert(uint64_t address);
  // Whether address was there; it is not afterwards.
  bool Remove(uint64_t address);
  // False when the address is certainly not held (any thread, no lock).
  bool MaybeHolds(uint64_t address) const;

 private:
  static constexpr uint32_t kBuckets = 1u << 20;
  uint64_t* slots_ = nullptr;    // 0: empty
  uint16_t* buckets_ = nullptr;  // blocks held per bucket (saturating at 65535)
  uint32_t size_ = 0;
};

}  // namespace pagewaste::shim
