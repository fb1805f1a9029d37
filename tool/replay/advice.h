// The sentence a user can act on, beside a call site whose small requests
// each took pages of their own: what they cost, as the page model counts it
// (a mapping and an unmapping each), and what a size-class allocator would
// have needed for the same requests (what_if.h's models, run per site).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "model/report_model.h"
#include "model/what_if.h"

namespace pagewaste {

class SiteAdvice {
 public:
  explicit SiteAdvice(uint64_t page_size) : page_size_(page_size) {}
  // The requests of a site that got mappings of their own.
  void Acquire(uint64_t site, uint64_t requested) { Model(site).Acquire(requested, true); }
  void Release(uint64_t site, uint64_t requested) { Model(site).Release(requested, true); }
  // The sentence for the site, or empty where the pattern is not that.
  std::string For(const CallSite& site);

 private:
  WhatIf& Model(uint64_t site);
  uint64_t page_size_;
  std::map<uint64_t, WhatIf> models_;
};

}  // namespace pagewaste
