// The what-if replays: the request stream under other page sizes and allocators
// (what_if.h).
#include "what_if.h"

#include <algorithm>

#include "format/page_cost.h"

namespace pagewaste {
namespace {

constexpr uint64_t kArenaChunk = 64 << 10;
constexpr uint64_t kArenaAlignment = 16;
constexpr uint64_t kSmallestClass = 16;

}  // namespace

const char* AllocatorModelName(AllocatorModel model) {
  switch (model) {
    case AllocatorModel::kPage: return "page";
    case AllocatorModel::kSizeClass: return "size-class";
    case AllocatorModel::kArena: return "arena";
  }
  return "unknown";
}

bool ParseAllocatorModel(const std::string& name, AllocatorModel* model) {
  for (AllocatorModel m : {AllocatorModel::kPage, AllocatorModel::kSizeClass, AllocatorModel::kArena}) {
    if (name == AllocatorModelName(m)) {
      *model = m;
      return true;
    }
  }
  return false;
}

WhatIf::WhatIf(uint64_t page_size, std::vector<uint64_t> page_sizes,
               std::vector<AllocatorModel> models)
    : page_size_(page_size), models_(std::move(models)) {
  for (uint64_t p : page_sizes) {
    PageSizeResult r;
    r.page_size = p;
    page_results_.push_back(r);
  }
  live_page_bytes_.assign(page_results_.size(), 0);
  page_.model = AllocatorModel::kPage;
  size_class_.model = AllocatorModel::kSizeClass;
  arena_.model = AllocatorModel::kArena;
}

// Classes are powers of two from 16 bytes to half a page; a larger request
// is "large" (0) and gets pages of its own.
uint64_t WhatIf::SizeClassOf(uint64_t size) const {
  // (A page too small for the smallest class has no classes: SlabsFor's
  // shift must not go negative.)
  if (size > page_size_ / 2 || kSmallestClass > page_size_ / 2) return 0;
  uint64_t cls = std::max(size, kSmallestClass);
  return 64 - static_cast<uint64_t>(__builtin_clzll(cls - 1));
}

// Slabs (one page each) that hold `blocks` blocks of class cls, each
// 2^cls bytes: page_size >> cls per slab, a power of two.
uint64_t WhatIf::SlabsFor(uint64_t blocks, uint64_t cls) const {
  int shift = __builtin_ctzll(page_size_) - static_cast<int>(cls);
  return (blocks + (uint64_t{1} << shift) - 1) >> shift;
}

void WhatIf::Acquire(uint64_t requested, bool own_mapping) {
  live_requested_ += requested;
  // Page sizes: a request that got its own mapping, rounded to each size.
  if (own_mapping) {
    for (size_t i = 0; i < page_results_.size(); ++i) {
      uint64_t pages = PageBytes(std::max<uint64_t>(requested, 1), page_results_[i].page_size);
      page_results_[i].page_bytes += pages;
      page_results_[i].page_waste_bytes += pages - requested;
      live_page_bytes_[i] += pages;
    }
  }
  // Page allocator: every request its own pages, one mmap.
  page_live_ += PageBytes(std::max<uint64_t>(requested, 1), page_size_);
  ++page_.syscalls;
  // Size classes: objects pack into one-page slabs; a new slab is one mmap.
  if (uint64_t cls = SizeClassOf(requested)) {
    uint64_t needed = SlabsFor(++classes_.live[cls], cls);
    if (needed > classes_.slabs[cls]) {
      classes_.slabs[cls] = needed;
      class_pages_ += page_size_;
      ++size_class_.syscalls;
    }
  } else {
    class_pages_ += PageBytes(requested, page_size_);
    ++size_class_.syscalls;
  }
  // Arena: bump allocation, 16-byte aligned, from 64 KiB chunks (or one of
  // the request's size in pages, if larger); nothing goes back before exit.
  uint64_t need = (requested + kArenaAlignment - 1) & ~(kArenaAlignment - 1);
  if (arena_used_ + need > arena_capacity_) {
    arena_capacity_ += std::max(kArenaChunk, PageBytes(need, page_size_));
    arena_used_ = arena_capacity_ - std::max(kArenaChunk, PageBytes(need, page_size_));
    ++arena_chunks_;
    ++arena_.syscalls;
  }
  arena_used_ += need;
  arena_requested_ += requested;
  Observe();
}

void WhatIf::Release(uint64_t requested, bool own_mapping) {
  live_requested_ -= std::min(live_requested_, requested);
  if (own_mapping) {
    for (size_t i = 0; i < page_results_.size(); ++i) {
      uint64_t pages = PageBytes(std::max<uint64_t>(requested, 1), page_results_[i].page_size);
      live_page_bytes_[i] -= std::min(live_page_bytes_[i], pages);
    }
  }
  page_live_ -= std::min(page_live_, PageBytes(std::max<uint64_t>(requested, 1), page_size_));
  ++page_.syscalls;
  if (uint64_t cls = SizeClassOf(requested)) {
    if (classes_.live[cls]) --classes_.live[cls];
    uint64_t needed = SlabsFor(classes_.live[cls], cls);
    if (needed < classes_.slabs[cls]) {  // an emptied slab goes back: one munmap
      classes_.slabs[cls] = needed;
      class_pages_ -= page_size_;
      ++size_class_.syscalls;
    }
  } else {
    class_pages_ -= std::min(class_pages_, PageBytes(requested, page_size_));
    ++size_class_.syscalls;
  }
  // Nothing grows on a release: no peak to observe.
}

void WhatIf::Observe() {
  for (size_t i = 0; i < page_results_.size(); ++i)
    page_results_[i].peak_page_bytes =
        std::max(page_results_[i].peak_page_bytes, live_page_bytes_[i]);
  auto peak = [&](AllocatorResult* r, uint64_t pages, uint64_t requested) {
    if (pages > r->peak_page_bytes) {
      r->peak_page_bytes = pages;
      r->page_waste_bytes = pages - std::min(pages, requested);
    }
  };
  peak(&page_, page_live_, live_requested_);
  peak(&size_class_, class_pages_, live_requested_);
}

void WhatIf::Finish() {
  // The arena is handed back at exit: one munmap per chunk. It never
  // shrinks, so its peak is its size at the end, and its waste what it holds
  // beyond all that was ever requested from it.
  arena_.syscalls += arena_chunks_;
  arena_chunks_ = 0;
  arena_.peak_page_bytes = arena_capacity_;
  arena_.page_waste_bytes = arena_capacity_ - std::min(arena_capacity_, arena_requested_);
}

std::vector<AllocatorResult> WhatIf::allocators() const {
  std::vector<AllocatorResult> out;
  for (AllocatorModel m : models_) {
    switch (m) {
      case AllocatorModel::kPage: out.push_back(page_); break;
      case AllocatorModel::kSizeClass: out.push_back(size_class_); break;
      case AllocatorModel::kArena: out.push_back(arena_); break;
    }
  }
  return out;
}

WhatIf StandardWhatIf(uint64_t page_size, std::vector<uint64_t> sizes,
                      std::vector<AllocatorModel> models) {
  if (sizes.empty() && models.empty()) {
    sizes = {4 << 10, 16 << 10, 64 << 10, 2 << 20};
    if (std::find(sizes.begin(), sizes.end(), page_size) == sizes.end()) sizes.push_back(page_size);
    std::sort(sizes.begin(), sizes.end());
    models = {AllocatorModel::kPage, AllocatorModel::kSizeClass, AllocatorModel::kArena};
  }
  return WhatIf(page_size, std::move(sizes), std::move(models));
}

}  // namespace pagewaste
