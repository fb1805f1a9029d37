// The replay's figures per thread: each thread's own for the first
// kTracked threads (a trace names as many thread ids as it likes), the rest
// summed, and every thread id counted.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <unordered_set>
#include <vector>

#include "model/report_model.h"

namespace pagewaste {

class ThreadCosts {
 public:
  // The figures tid's events are charged to; valid while the replay runs.
  CostTotals* Of(uint32_t tid) {
    tids_.insert(tid);
    auto it = tracked_.find(tid);
    if (it != tracked_.end()) return &it->second;
    if (tracked_.size() < kTracked) return &tracked_[tid];
    return &untracked_;
  }

  // The kThreadsListed threads with the most calls, by tid, and the rest
  // summed.
  void List(Report* r) const {
    r->threads = tids_.size();
    std::vector<ThreadTotals> all;
    for (const auto& [tid, cost] : tracked_) all.push_back({tid, cost});
    std::stable_sort(all.begin(), all.end(), [](const ThreadTotals& a, const ThreadTotals& b) {
      return a.cost.calls() > b.cost.calls();
    });
    size_t listed = std::min(all.size(), kThreadsListed);
    r->thread_totals.assign(all.begin(), all.begin() + static_cast<ptrdiff_t>(listed));
    std::sort(r->thread_totals.begin(), r->thread_totals.end(),
              [](const ThreadTotals& a, const ThreadTotals& b) { return a.tid < b.tid; });
    r->other_threads.threads = tids_.size() - listed;
    r->other_threads.cost = untracked_;
    for (size_t i = listed; i < all.size(); ++i) r->other_threads.cost.Add(all[i].cost);
  }

 private:
  static constexpr size_t kTracked = 4096;
  std::map<uint32_t, CostTotals> tracked_;
  CostTotals untracked_;
  std::unordered_set<uint32_t> tids_;
};

}  // namespace pagewaste
