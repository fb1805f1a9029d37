// The program's own private anonymous mappings that are still mapped, so
// that what they were used for can be measured at exit (usage_estimate.h),
// as it is for the ones unmapped before. Open addressing over memory
// reserved with a raw mmap on first use; the caller holds the writer lock.
// When the table is full, further mappings are simply not measured at exit.
#pragma once

#include <cstdint>

namespace pagewaste::producer {

class LiveMappings {
 public:
  static constexpr uint32_t kCapacity = 1u << 16;

  void Add(uint64_t address, uint64_t length);
  // Forgets the mappings that [start, start + length) unmaps entirely.
  void Remove(uint64_t start, uint64_t length);
  void Move(uint64_t from, uint64_t to, uint64_t new_length);

  template <typename F>
  void ForEach(F f) const {
    if (!slots_) return;
    for (uint32_t i = 0; i < kCapacity; ++i)
      if (slots_[i].address) f(slots_[i].address, slots_[i].length);
  }
  // The memory system calls the table made (its one reservation).
  uint32_t mmaps() const { return slots_ ? 1 : 0; }

 private:
  struct Slot {
    uint64_t address;  // 0: empty
    uint64_t length;
  };
  uint32_t Find(uint64_t address) const;
  Slot* slots_ = nullptr;
  uint32_t size_ = 0;
};

}  // namespace pagewaste::producer
