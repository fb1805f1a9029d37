// Where the memory went: what the program held, in parts that sum to it
// (reconciliation.h).
#include "reconciliation.h"

#include <algorithm>

namespace pagewaste {

void Reconciliation::Acquire(uint64_t requested, uint64_t mapped, uint64_t slack, bool direct,
                             uint64_t time_ns) {
  Change(requested, mapped, slack, direct, +1);
  if (live_.total_bytes > highest_.total_bytes) {
    highest_ = live_;
    highest_.time_ns = time_ns;
    Kept(&highest_);
  }
}

void Reconciliation::Release(uint64_t requested, uint64_t mapped, uint64_t slack, bool direct) {
  Change(requested, mapped, slack, direct, -1);
}

void Reconciliation::HeapSize(uint64_t bytes) {
  heap_size_ = bytes;
  heap_known_ = true;
  // The heap grew for the allocation that made the highest total: count it
  // there too.
  if (live_.total_bytes == highest_.total_bytes) Kept(&highest_);
}

void Reconciliation::Change(uint64_t requested, uint64_t mapped, uint64_t slack, bool direct,
                            int sign) {
  auto apply = [sign](uint64_t* v, uint64_t d) { *v = sign > 0 ? *v + d : *v - std::min(*v, d); };
  if (direct) {
    apply(&live_.direct_mapping_bytes, mapped);
  } else {
    apply(&live_.requested_bytes, requested);
    apply(&live_.allocator_slack_bytes, slack);
    if (mapped) apply(&live_.page_rounding_bytes, mapped - std::min(mapped, requested));
    // glibc: a block on the heap is its usable bytes and an 8-byte header.
    if (!mapped) apply(&heap_blocks_, requested + slack + 8);
  }
  live_.total_bytes = live_.requested_bytes + live_.allocator_slack_bytes +
                      live_.page_rounding_bytes + live_.direct_mapping_bytes;
}

// What the brk heap held beyond the live blocks on it: kept after frees (or
// not handed out yet). The main heap only.
void Reconciliation::Kept(MemoryReconciliation* m) const {
  m->kept_known = heap_known_;
  m->kept_after_free_bytes = heap_size_ > heap_blocks_ ? heap_size_ - heap_blocks_ : 0;
}

}  // namespace pagewaste
