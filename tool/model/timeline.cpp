// The timeline of live and page bytes over a run, in a bounded number of
// samples (timeline.h).
#include "timeline.h"

#include <algorithm>

namespace pagewaste {

void Timeline::Record(uint64_t time_ns, uint64_t live_bytes, uint64_t page_bytes, uint64_t waste) {
  if (!samples_.empty() && time_ns >= samples_.back().start_ns &&
      time_ns - samples_.back().start_ns < interval_) {
    // Still in the last sample's interval: most events (no division).
    TimelineSample& s = samples_.back();
    s.live_bytes = std::max(s.live_bytes, live_bytes);
    s.page_bytes = std::max(s.page_bytes, page_bytes);
    s.page_waste_bytes = std::max(s.page_waste_bytes, waste);
    return;
  }
  while (time_ns / interval_ >= 2 * wanted_) {
    // Merge neighbours: the interval doubles, the highest values stay.
    std::vector<TimelineSample> merged;
    for (const TimelineSample& s : samples_) {
      uint64_t start = s.start_ns / (2 * interval_) * (2 * interval_);
      if (merged.empty() || merged.back().start_ns != start) {
        merged.push_back(s);
        merged.back().start_ns = start;
      } else {
        TimelineSample& m = merged.back();
        m.live_bytes = std::max(m.live_bytes, s.live_bytes);
        m.page_bytes = std::max(m.page_bytes, s.page_bytes);
        m.page_waste_bytes = std::max(m.page_waste_bytes, s.page_waste_bytes);
      }
    }
    samples_ = std::move(merged);
    interval_ *= 2;
  }
  uint64_t start = time_ns / interval_ * interval_;
  if (samples_.empty() || samples_.back().start_ns != start) {
    // A quiet interval holds what the one before ended with.
    TimelineSample s;
    s.start_ns = start;
    samples_.push_back(s);
  }
  TimelineSample& s = samples_.back();
  s.live_bytes = std::max(s.live_bytes, live_bytes);
  s.page_bytes = std::max(s.page_bytes, page_bytes);
  s.page_waste_bytes = std::max(s.page_waste_bytes, waste);
}

std::vector<TimelineSample> Timeline::Samples() const { return samples_; }

}  // namespace pagewaste
