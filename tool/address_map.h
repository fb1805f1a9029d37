// A hash map from addresses to small values, for the replay's live set: open
// addressing with linear probing and backward-shift deletion, in one array.
// A replay looks up every freed address once and inserts every allocated
// one, so this is its hottest structure; std::unordered_map spent a heap
// node and a pointer chase on each.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace pagewaste {

template <typename Value>
class AddressMap {
 public:
  AddressMap() { slots_.resize(kInitialSlots); }

  size_t size() const { return size_; }

  static constexpr size_t kNone = ~size_t{0};

  // The slot holding address, or kNone. A slot stays valid until the next
  // Insert or Erase.
  size_t Find(uint64_t address) const {
    for (size_t i = Home(address);; i = Next(i)) {
      const Slot& s = slots_[i];
      if (!s.used) return kNone;
      if (s.address == address) return i;
    }
  }
  Value& At(size_t slot) { return slots_[slot].value; }

  // Inserts (address, value) if address is absent. Returns the slot holding
  // address and whether it was inserted.
  std::pair<size_t, bool> Insert(uint64_t address, const Value& value) {
    if ((size_ + 1) * 4 > slots_.size() * 3) Grow();
    for (size_t i = Home(address);; i = Next(i)) {
      Slot& s = slots_[i];
      if (!s.used) {
        s.address = address;  // field by field: no temporary to copy
        s.value = value;
        s.used = true;
        ++size_;
        return {i, true};
      }
      if (s.address == address) return {i, false};
    }
  }

  void Erase(size_t slot) {
    size_t hole = slot;
    // Backward shift: pull later entries of the run into the hole when their
    // home position allows it, so that no tombstones are needed.
    for (size_t i = Next(hole);; i = Next(i)) {
      Slot& s = slots_[i];
      if (!s.used) break;
      size_t home = Home(s.address);
      bool movable = hole <= i ? (home <= hole || home > i) : (home <= hole && home > i);
      if (movable) {
        slots_[hole].address = s.address;
        slots_[hole].value = s.value;
        slots_[hole].used = true;
        hole = i;
      }
    }
    slots_[hole].used = false;
    --size_;
  }

  template <typename F>
  void ForEach(F f) const {
    for (const Slot& s : slots_)
      if (s.used) f(s.address, s.value);
  }

 private:
  static constexpr size_t kInitialSlots = 1024;
  struct Slot {
    uint64_t address = 0;
    Value value{};
    bool used = false;
  };

  size_t Home(uint64_t address) const {
    // Heap addresses share their high bits and are 16-byte aligned: mix.
    uint64_t h = address * 0x9E3779B97F4A7C15ull;
    return static_cast<size_t>(h >> 32) & (slots_.size() - 1);
  }
  size_t Next(size_t i) const { return (i + 1) & (slots_.size() - 1); }

  void Grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.size() * 2, Slot{});
    size_ = 0;
    for (const Slot& s : old)
      if (s.used) Insert(s.address, s.value);
  }

  std::vector<Slot> slots_;
  size_t size_ = 0;
};

}  // namespace pagewaste
