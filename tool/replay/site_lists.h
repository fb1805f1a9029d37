// The lists of call sites a replay's report leads with, from every site it
// charged: ranked (by waste, by system calls, by what was live at exit, by
// the pages held at the peak), cut to the first few, and named (frames,
// key, label), with stacks that symbolize alike merged.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "advice.h"
#include "model/report_model.h"
#include "replay.h"
#include "site_frames.h"

namespace pagewaste {

// r's call_sites (by waste, each with its advice), kernel_sites (by system
// calls, those that made any) and leak_sites (by bytes live at exit, those
// that left any): the first `top` of each (0: every call site, and 10 of
// the others).
void RankSites(const std::vector<CallSite>& all, size_t top, SiteAdvice* advice, Report* r);

// r's peak sites from (stack id, page bytes held at the peak): the first
// `top` (0: 10) by bytes.
void ListPeakSites(std::vector<std::pair<uint64_t, uint64_t>> held, size_t top, Report* r);

// Every list's sites given their frames (when options.symbolize), key,
// sampling error and label; sites whose stacks symbolize alike (two calls
// on one line) merged; ties in each ranking ordered by key, so that every
// run of a deterministic program gives one order.
void NameSites(const ReplayOptions& options, SiteFrames* frames, const StackNodes& nodes,
               const std::vector<ModuleInfo>& modules, uint64_t sample_interval, Report* r);

}  // namespace pagewaste
