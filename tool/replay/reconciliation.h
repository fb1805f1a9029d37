// "Where the memory went": the parts of what the program held (malloc's
// requested bytes, the allocator's slack, page rounding of malloc's own
// mappings, direct mappings) followed over the replay, kept at the moment
// their sum was highest, with what the allocator's brk heap held beyond its
// live blocks at that moment.
#pragma once

#include <cstdint>

#include "model/report_model.h"

namespace pagewaste {

class Reconciliation {
 public:
  // A heap block (mapped 0), a block malloc mapped for itself (mapped > 0),
  // or a direct mapping of the program's (direct).
  void Acquire(uint64_t requested, uint64_t mapped, uint64_t slack, bool direct, uint64_t time_ns);
  void Release(uint64_t requested, uint64_t mapped, uint64_t slack, bool direct);
  // Where an allocator call left the brk heap: its size now.
  void HeapSize(uint64_t bytes);
  const MemoryReconciliation& highest() const { return highest_; }

 private:
  void Change(uint64_t requested, uint64_t mapped, uint64_t slack, bool direct, int sign);
  void Kept(MemoryReconciliation* m) const;

  MemoryReconciliation live_;
  MemoryReconciliation highest_;
  uint64_t heap_blocks_ = 0;  // live heap blocks, headers included
  uint64_t heap_size_ = 0;
  bool heap_known_ = false;
};

}  // namespace pagewaste
