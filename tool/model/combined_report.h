// The processes of several traces (a parent and its children, a test
// suite's hundreds) as one picture. CombinedView takes one process's report
// at a time, as its replay ends, and keeps only what the picture needs: the
// sites merged by key, each process's summary and page steps, and the
// largest process's timeline and what-if tables. Its memory grows with the
// distinct sites and frames, not with the number of traces. One process
// gives the same figures as its own report.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "report_model.h"

namespace pagewaste {

struct CombinedPeak {
  // The most bytes in pages of own mappings that the processes held at
  // once, to the millisecond (PageStep), adding up in one millisecond only
  // processes alive at one moment (their lifetimes, EndEvent): exact for
  // one process, and for processes that did not run at the same time.
  uint64_t page_bytes = 0;
  uint64_t time_ns = 0;  // since the first process started
  struct Share {
    size_t process = 0;  // index into the processes
    uint64_t page_bytes = 0;
  };
  std::vector<Share> processes;  // those that held pages then, most first
  uint64_t live_mappings = 0;    // the most own mappings one process held at once
};

struct CombinedReport {
  size_t processes = 0;
  Losses lost;
  CostTotals summary;
  uint64_t leaked_allocations = 0;
  uint64_t leaked_bytes = 0;
  uint64_t peak_live_bytes = 0;  // the largest of one process's
  // Every process's call sites merged by key (SiteKey), ordered as a
  // process's are; frames and advice are those of the largest part.
  std::vector<CallSite> call_sites;
  std::vector<CallSite> kernel_sites;  // the ten that make the most system calls
  std::vector<CallSite> leak_sites;    // the ten with the most live at exit
  CombinedPeak peak;
  // Each process's report, in the order added, without its lists of sites
  // and threads, its histogram, timeline and what-if tables (Slimmed);
  // except the one that held the most pages, which keeps its timeline,
  // what-if and memory tables.
  std::vector<Report> each;
  size_t largest = 0;  // index of that one in each
  // Every process's modules' build ids, by path.
  std::map<std::string, std::string> module_build_ids;
};

class CombinedView {
 public:
  // Adds a process's figures and sites, and keeps its report slimmed.
  void Add(Report report);
  // The picture of every process added; the view is empty after.
  CombinedReport Finish();

 private:
  CombinedReport c_;
  std::unordered_map<std::string, size_t> by_key_;
  std::vector<size_t> last_process_;  // by combined site: the last process that added to it
};

// The combined picture of reports already in memory.
CombinedReport Combine(const std::vector<Report>& reports);

// How a process image came to be and ended, beside the others of a run,
// for the processes tables: " (child of 4242; exec'd in place of zig)", so
// that a fork and its exec, which share a pid and often a name, are told
// apart. Empty where there is nothing to say.
std::string ProcessImageNote(const Report& r, const std::vector<Report>& reports);

}  // namespace pagewaste
