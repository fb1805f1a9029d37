// Under sampling, the live blocks whose allocation was recorded, so that their
// frees are too (sampled_blocks.h).
#include "sampled_blocks.h"

#include "support/open_addressing.h"
#include "producer/raw_mmap.h"

namespace pagewaste::shim {
namespace {

uint32_t Home(uint64_t address) {
  return static_cast<uint32_t>((address * 0x9E3779B97F4A7C15ull) >> 40) & (SampledBlocks::kSlots - 1);
}
uint32_t Next(uint32_t i) { return (i + 1) & (SampledBlocks::kSlots - 1); }
uint32_t Bucket(uint64_t address, uint32_t buckets) {
  return static_cast<uint32_t>((address * 0xC2B2AE3D27D4EB4Full) >> 44) & (buckets - 1);
}

}  // namespace

bool SampledBlocks::Init() {
  // One reservation for both: one mmap.
  void* memory = producer::RawReserve(sizeof(uint64_t) * kSlots + sizeof(uint16_t) * kBuckets);
  if (!memory) return false;
  slots_ = static_cast<uint64_t*>(memory);
  buckets_ = reinterpret_cast<uint16_t*>(slots_ + kSlots);
  return true;
}

bool SampledBlocks::MaybeHolds(uint64_t address) const {
  return buckets_ && __atomic_load_n(&buckets_[Bucket(address, kBuckets)], __ATOMIC_ACQUIRE) != 0;
}

bool SampledBlocks::Insert(uint64_t address) {
  if (!slots_ || !address || size_ >= kSlots / 2) return false;
  for (uint32_t i = Home(address);; i = Next(i)) {
    if (slots_[i] == address) return true;
    if (!slots_[i]) {
      slots_[i] = address;
      ++size_;
      uint16_t* count = &buckets_[Bucket(address, kBuckets)];
      if (*count != UINT16_MAX) __atomic_store_n(count, *count + 1, __ATOMIC_RELEASE);
      return true;
    }
  }
}

bool SampledBlocks::Remove(uint64_t address) {
  if (!slots_ || !address) return false;
  uint32_t hole = Home(address);
  for (;; hole = Next(hole)) {
    if (!slots_[hole]) return false;
    if (slots_[hole] == address) break;
  }
  EraseFromRun(
      hole, kSlots - 1, [&](size_t i) { return slots_[i] != 0; },
      [&](size_t i) { return Home(slots_[i]); },
      [&](size_t from, size_t to) { slots_[to] = slots_[from]; }, [&](size_t i) { slots_[i] = 0; });
  --size_;
  // A saturated count stays: the bucket is then always looked up.
  uint16_t* count = &buckets_[Bucket(address, kBuckets)];
  if (*count != UINT16_MAX) __atomic_store_n(count, *count - 1, __ATOMIC_RELEASE);
  return true;
}

}  // namespace pagewaste::shim
