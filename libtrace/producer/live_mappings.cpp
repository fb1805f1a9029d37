// The program's own anonymous mappings still mapped, measured at exit
// (live_mappings.h).
#include "live_mappings.h"

#include "raw_mmap.h"

namespace pagewaste::producer {
namespace {

uint32_t Hash(uint64_t address) {
  return static_cast<uint32_t>((address >> 12) * 0x9E3779B97F4A7C15ull >> 40) &
         (LiveMappings::kCapacity - 1);
}

}  // namespace

uint32_t LiveMappings::Find(uint64_t address) const {
  uint32_t slot = Hash(address);
  for (uint32_t probes = 0; probes < kCapacity; ++probes) {
    if (slots_[slot].address == address || slots_[slot].address == 0) return slot;
    slot = (slot + 1) & (kCapacity - 1);
  }
  return kCapacity;
}

void LiveMappings::Add(uint64_t address, uint64_t length) {
  if (!slots_) {
    slots_ = static_cast<Slot*>(RawReserve(sizeof(Slot) * kCapacity));
    if (!slots_) return;
  }
  if (size_ >= kCapacity / 2) return;  // keep probing short; the rest go unmeasured
  uint32_t slot = Find(address);
  if (slot == kCapacity) return;
  if (slots_[slot].address == 0) ++size_;
  slots_[slot] = {address, length};
}

void LiveMappings::Remove(uint64_t start, uint64_t length) {
  if (!slots_ || !size_) return;
  // The common case, a whole mapping unmapped at its start, is one probe;
  // anything else walks the table (rare: partial or multi-mapping unmaps).
  uint32_t slot = Find(start);
  if (slot != kCapacity && slots_[slot].address == start && slots_[slot].length <= length) {
    length -= slots_[slot].length;
    slots_[slot].address = 0;
    --size_;
    // Re-insert the rest of the probe run so lookups stay correct.
    for (uint32_t next = (slot + 1) & (kCapacity - 1); slots_[next].address;
         next = (next + 1) & (kCapacity - 1)) {
      Slot moved = slots_[next];
      slots_[next].address = 0;
      --size_;
      Add(moved.address, moved.length);
    }
    if (length == 0) return;
  }
  bool removed = false;
  for (uint32_t i = 0; i < kCapacity; ++i) {
    Slot& s = slots_[i];
    if (s.address && s.address >= start && s.address + s.length <= start + length) {
      s.address = 0;
      --size_;
      removed = true;
    }
  }
  if (!removed) return;
  // Holes may now cut probe runs: put every entry back where Find looks.
  for (uint32_t i = 0; i < kCapacity; ++i) {
    if (!slots_[i].address) continue;
    Slot s = slots_[i];
    slots_[i].address = 0;
    --size_;
    Add(s.address, s.length);
  }
}

void LiveMappings::Move(uint64_t from, uint64_t to, uint64_t new_length) {
  if (!slots_) return;
  uint32_t slot = Find(from);
  if (slot == kCapacity || slots_[slot].address != from) return;
  Remove(from, slots_[slot].length);
  Add(to, new_length);
}

}  // namespace pagewaste::producer
