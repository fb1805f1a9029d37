// The timeline: live requested bytes, bytes in pages of own mappings and
// their page-rounding waste over time, as a bounded number of samples.
//
// Streaming, without knowing the run's length: samples cover intervals of
// equal length, starting at 1 ms; when the run outgrows twice the wanted
// number of samples, neighbours merge and the interval doubles. Each
// sample keeps the highest value of each measure within its interval, so no
// peak is lost to the sampling.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pagewaste {

struct TimelineSample {
  uint64_t start_ns = 0;
  uint64_t live_bytes = 0;        // requested bytes live, highest in the interval
  uint64_t page_bytes = 0;        // bytes in pages of own mappings, highest
  uint64_t page_waste_bytes = 0;  // their page-rounding waste, highest
};

class Timeline {
 public:
  explicit Timeline(size_t samples) : wanted_(samples ? samples : 1) {}
  void Record(uint64_t time_ns, uint64_t live_bytes, uint64_t page_bytes, uint64_t waste);
  // At most 2 x the wanted number of samples, in time order.
  std::vector<TimelineSample> Samples() const;
  uint64_t interval_ns() const { return interval_; }

 private:
  size_t wanted_;
  uint64_t interval_ = 1000000;
  std::vector<TimelineSample> samples_;
};

}  // namespace pagewaste
