// How many allocations a sampled one stands for (pagewaste run --sample):
// one of `size` bytes was picked with probability p = 1 - exp(-size /
// interval), so it stands for 1 / p. The fractions carry over from one to
// the next (rounding each alone would bias the totals: 10.5 is not 11), so
// the weights sum to the sum of 1 / p.
#pragma once

#include <cmath>
#include <cstdint>

namespace pagewaste {

class SampleWeights {
 public:
  // interval: bytes per sample; 0: not sampled, every weight 1.
  explicit SampleWeights(uint64_t interval) : interval_(interval) {}

  uint64_t interval() const { return interval_; }

  uint64_t Of(uint64_t size) {
    if (!interval_) return 1;
    double p = -std::expm1(-static_cast<double>(size) / static_cast<double>(interval_));
    double exact = (p > 0 ? 1 / p : 1) + carry_;
    auto weight = static_cast<uint64_t>(exact);
    carry_ = exact - static_cast<double>(weight);
    return weight;
  }

 private:
  uint64_t interval_;
  double carry_ = 0;
};

}  // namespace pagewaste
