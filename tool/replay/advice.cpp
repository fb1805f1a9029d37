// The advice beside a call site whose small requests each took pages of their
// own (advice.h).
#include "advice.h"

#include <fmt/format.h>

#include <algorithm>

namespace pagewaste {

WhatIf& SiteAdvice::Model(uint64_t site) {
  auto it = models_.find(site);
  if (it == models_.end())
    it = models_
             .emplace(site, WhatIf(page_size_, {}, {AllocatorModel::kPage, AllocatorModel::kSizeClass}))
             .first;
  return it->second;
}

std::string SiteAdvice::For(const CallSite& site) {
  const CostTotals& c = site.cost;
  auto it = models_.find(site.stack_id);
  if (it == models_.end() || c.own_mappings < 2) return "";
  uint64_t average = c.own_requested_bytes / c.own_mappings;
  if (average > page_size_ / 2) return "";  // large requests: whole pages suit them
  it->second.Finish();
  std::vector<AllocatorResult> models = it->second.allocators();  // page, size-class
  return fmt::format(
      "these {} requests of {} bytes on average held up to {} pages at once and cost {} "
      "syscalls; a size-class allocator would have held {} pages and made {} syscalls: put a "
      "general purpose or arena allocator in front of the page allocator, or batch the requests",
      GroupDigits(c.own_mappings), GroupDigits(average),
      GroupDigits(models[0].peak_page_bytes / page_size_), GroupDigits(models[0].syscalls),
      GroupDigits(models[1].peak_page_bytes / page_size_), GroupDigits(models[1].syscalls));
}

}  // namespace pagewaste
