// Requests by size, in power-of-two buckets (BucketOf, report_model.h): how
// many, how many got a mapping of their own, and the page waste of those.
#pragma once

#include <cstdint>
#include <vector>

#include "model/report_model.h"

namespace pagewaste {

class SizeHistogram {
 public:
  // `weight`: the requests a sampled one stands for.
  void Add(uint64_t size, bool own_mapping, uint64_t waste, uint64_t weight = 1) {
    HistogramBucket& b = buckets_[BucketOf(size)];
    b.count += weight;
    if (own_mapping) ++b.own_mappings;
    b.page_waste_bytes += waste;
  }

  // The buckets that hold any request, smallest first, with their bounds.
  std::vector<HistogramBucket> Buckets() const {
    std::vector<HistogramBucket> out;
    for (int b = 0; b < kHistogramBuckets; ++b) {
      if (!buckets_[b].count) continue;
      HistogramBucket bucket = buckets_[b];
      bucket.min_size = b == 0 ? 0 : (uint64_t{1} << (b - 1)) + 1;
      bucket.max_size = uint64_t{1} << b;
      out.push_back(bucket);
    }
    return out;
  }

 private:
  HistogramBucket buckets_[kHistogramBuckets] = {};
};

}  // namespace pagewaste
