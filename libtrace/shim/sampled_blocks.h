// Under sampling (pagewaste run --sample), the addresses of the live blocks
// whose Alloc was recorded, so that their Free is recorded too and no other
// Free is. Open addressing with backward-shift deletion over memory
// reserved once with mmap; the caller holds the writer lock.
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

 private:
  uint64_t* slots_ = nullptr;  // 0: empty
  uint32_t size_ = 0;
};

}  // namespace pagewaste::shim
