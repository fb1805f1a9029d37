// What-if: the request stream of a trace replayed under other assumptions,
// side by side with what happened. docs/what-if.md states each rule; the
// figures are exact for those rules and can be worked out by hand.
//
// The stream: every successful allocation of the malloc family and every
// anonymous mapping the program made, in time order, each with its
// requested size and whether it got a mapping of its own; and their release
// (free, munmap) when it happened.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pagewaste {

struct PageSizeResult {
  uint64_t page_size = 0;
  uint64_t page_bytes = 0;        // all own-mapping requests, rounded to page_size
  uint64_t page_waste_bytes = 0;  // page_bytes - their requested bytes
  uint64_t peak_page_bytes = 0;   // most page bytes live at once
};

enum class AllocatorModel { kPage, kSizeClass, kArena };

struct AllocatorResult {
  AllocatorModel model = AllocatorModel::kPage;
  uint64_t peak_page_bytes = 0;   // most bytes in pages at once
  uint64_t page_waste_bytes = 0;  // at that moment: page bytes - requested bytes live
  uint64_t syscalls = 0;          // mmap and munmap the model would make
};

const char* AllocatorModelName(AllocatorModel model);
// "page", "size-class", "arena"; false if unknown.
bool ParseAllocatorModel(const std::string& name, AllocatorModel* model);

class WhatIf {
 public:
  // page_size: the traced machine's, which the allocator models use.
  WhatIf(uint64_t page_size, std::vector<uint64_t> page_sizes,
         std::vector<AllocatorModel> models);

  void Acquire(uint64_t requested, bool own_mapping);
  void Release(uint64_t requested, bool own_mapping);
  // Ends the stream: what was never released goes at exit.
  void Finish();

  const std::vector<PageSizeResult>& page_sizes() const { return page_results_; }
  std::vector<AllocatorResult> allocators() const;

 private:
  struct SizeClassState {
    uint64_t live[64] = {};   // live objects per class (log2 of the class size)
    uint64_t slabs[64] = {};  // slabs (pages) held per class
  };
  void Observe();  // after each change: peaks
  uint64_t SizeClassOf(uint64_t size) const;  // log2 of the class, 0 = large
  uint64_t SlabsFor(uint64_t blocks, uint64_t cls) const;

  uint64_t page_size_;
  std::vector<PageSizeResult> page_results_;
  std::vector<uint64_t> live_page_bytes_;  // per page size
  std::vector<AllocatorModel> models_;
  uint64_t live_requested_ = 0;

  // The page allocator model.
  uint64_t page_live_ = 0;
  AllocatorResult page_;
  // The size-class model.
  SizeClassState classes_;
  uint64_t class_pages_ = 0;  // slab pages + large requests' pages
  AllocatorResult size_class_;
  // The arena model.
  uint64_t arena_capacity_ = 0;
  uint64_t arena_used_ = 0;
  uint64_t arena_requested_ = 0;
  uint64_t arena_chunks_ = 0;
  AllocatorResult arena_;
};

// The what-if a report makes: of the page sizes and models given, or, both
// empty, the standard set (4 KiB, 16 KiB, 64 KiB, 2 MiB and the traced
// machine's page size; every model).
WhatIf StandardWhatIf(uint64_t page_size, std::vector<uint64_t> page_sizes,
                      std::vector<AllocatorModel> models);

}  // namespace pagewaste
