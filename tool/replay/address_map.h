// A hash map from addresses to small values, for the replay's live set: open
// addressing with linear probing and backward-shift deletion. Keys and
// values lie in separate arrays, so that probing reads 8 bytes a slot (a
// live set of a million blocks probes 8 MiB of keys, not 80 MiB of slots).
// A replay looks up every freed address once and inserts every allocated
// one, so this is its hottest structure; std::unordered_map spent a heap
// node and a pointer chase on each. Address 0 is not a key (no block lives
// there).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "support/open_addressing.h"

namespace pagewaste {

template <typename Value>
class AddressMap {
 public:
  static constexpr size_t kNone = ~size_t{0};

  AddressMap() : keys_(kInitialSlots, 0), values_(kInitialSlots) {}

  size_t size() const { return size_; }

  // The slot holding address, or kNone. A slot stays valid until the next
  // Insert or Erase.
  size_t Find(uint64_t address) const {
    for (size_t i = Home(address);; i = Next(i)) {
      if (keys_[i] == address) return i;
      if (!keys_[i]) return kNone;
    }
  }
  Value& At(size_t slot) { return values_[slot]; }

  // Inserts (address, value) if address (not 0) is absent. Returns the slot
  // holding address and whether it was inserted.
  std::pair<size_t, bool> Insert(uint64_t address, const Value& value) {
    if ((size_ + 1) * 4 > keys_.size() * 3) Grow();
    for (size_t i = Home(address);; i = Next(i)) {
      if (keys_[i] == address) return {i, false};
      if (!keys_[i]) {
        keys_[i] = address;
        values_[i] = value;
        ++size_;
        return {i, true};
      }
    }
  }

  void Erase(size_t slot) {
    EraseFromRun(
        slot, keys_.size() - 1, [&](size_t i) { return keys_[i] != 0; },
        [&](size_t i) { return Home(keys_[i]); },
        [&](size_t from, size_t to) {
          keys_[to] = keys_[from];
          values_[to] = values_[from];
        },
        [&](size_t i) { keys_[i] = 0; });
    --size_;
  }

  template <typename F>
  void ForEach(F f) const {
    for (size_t i = 0; i < keys_.size(); ++i)
      if (keys_[i]) f(keys_[i], values_[i]);
  }

 private:
  static constexpr size_t kInitialSlots = 1024;

  size_t Home(uint64_t address) const {
    // Heap addresses share their high bits and are 16-byte aligned: mix.
    uint64_t h = address * 0x9E3779B97F4A7C15ull;
    return static_cast<size_t>(h >> 32) & (keys_.size() - 1);
  }
  size_t Next(size_t i) const { return (i + 1) & (keys_.size() - 1); }

  void Grow() {
    std::vector<uint64_t> old_keys = std::move(keys_);
    std::vector<Value> old_values = std::move(values_);
    keys_.assign(old_keys.size() * 2, 0);
    values_.assign(old_keys.size() * 2, Value{});
    size_ = 0;
    for (size_t i = 0; i < old_keys.size(); ++i)
      if (old_keys[i]) Insert(old_keys[i], old_values[i]);
  }

  std::vector<uint64_t> keys_;  // 0: empty
  std::vector<Value> values_;
  size_t size_ = 0;
};

}  // namespace pagewaste
