// Charging rule: an event is charged to the call site of its own stack; a
// free recorded without a stack (the common, cheap case) is charged to the
// site that allocated the block. So every site's figures are the calls made
// there, and the sites sum to the process totals.
#include "replay.h"

#include <algorithm>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>

#include "address_map.h"
#include "advice.h"
#include "format/page_cost.h"
#include "reconciliation.h"
#include "replay_progress.h"
#include "model/program_code.h"
#include "sample_weights.h"
#include "site_frames.h"
#include "site_lists.h"
#include "size_histogram.h"
#include "thread_costs.h"

namespace pagewaste {
namespace {

struct LiveBlock {
  uint64_t requested;
  uint64_t mapped_bytes;
  uint64_t site;
  uint64_t slack = 0;     // usable - requested
  uint64_t time_ns = 0;   // when it was allocated
  uint64_t sequence = 0;  // which allocation of the run it was
  uint64_t weight = 1;    // the allocations it stands for (sampling); the
                          // bytes above are for all of them
};

// A live anonymous mapping of the program's, in whole pages.
struct LiveMapping {
  uint64_t end;        // exclusive, page-aligned
  uint64_t requested;  // share of the requested bytes still mapped
  uint64_t site;
  // PROT_NONE: reserved address space, not memory, until made accessible
  // (mprotect, or a mapping placed over it). Holds no requested bytes.
  bool reserved = false;
};

class Replayer : public RecordVisitor {
 public:
  Replayer(Report* report, uint64_t page_size, uint64_t sample_interval,
           const ReplayOptions& options)
      : report_(report),
        page_size_(page_size),
        sample_weights_(sample_interval),
        what_if_(StandardWhatIf(page_size, options.what_if_page_sizes, options.what_if_models)),
        timeline_(options.timeline_samples),
        advice_(page_size),
        symbolize_(options.symbolize) {
    frames_.UseModuleFiles(options.module_files);
  }
  // Each snapshot lists every module again: each is kept once.
  void OnModule(const ModuleInfo& m) override {
    if (modules_seen_.insert({m.path, m.load_bias}).second) modules_.push_back(m);
  }
  void OnSymbolizedAddress(const SymbolizedAddress& a) override { frames_.AddEmbedded(a); }
  // The trace carries its symbols (format::kHeaderHasSymbols): no debug
  // information to load.
  void UseEmbeddedSymbols() {
    frames_.UseEmbedded();
    symbolize_ = false;
  }
  // The trace starts at an attach (format::kHeaderAttached).
  void StartsAtAttach() { attached_ = true; }
  void OnStackNode(uint64_t id, uint64_t parent, uint64_t ip) override {
    if (nodes_.size() <= id) nodes_.resize(id + 1);
    nodes_[id] = {parent, ip};
  }

  void OnAlloc(const AllocEvent& e) override {
    Seen(e.prefix);
    CostTotals& site = Site(e.prefix.stack);
    if (e.flags & format::kFlagFailed) {
      Charge(&site, [](CostTotals* c) { ++c->failed_calls; });
      return;
    }
    uint64_t waste = e.mapped_bytes > e.requested ? e.mapped_bytes - e.requested : 0;
    // A sampled allocation stands for `weight` of its size (format.h).
    uint64_t weight = (e.flags & format::kFlagSampled) ? sample_weights_.Of(e.requested) : 1;
    Charge(&site, [&](CostTotals* c) {
      c->allocations += weight;
      c->requested_bytes += weight * e.requested;
      if (e.flags & format::kFlagSampled) c->sampled_bytes += weight * e.requested;
      c->usable_bytes += weight * e.usable;
      if (e.mapped_bytes) {
        ++c->own_mappings;
        c->own_requested_bytes += e.requested;
        c->own_usable_bytes += e.usable;
        c->page_bytes += e.mapped_bytes;
        c->page_waste_bytes += waste;
      }
      AddSyscalls(c, e.syscalls, e.flags);
    });
    histogram_.Add(e.requested, e.mapped_bytes != 0, waste, weight);
    if (!e.address) return;  // no block lives at 0 (a damaged trace): not tracked
    LiveBlock block{weight * e.requested, e.mapped_bytes, e.prefix.stack,
                    weight * (e.usable > e.requested ? e.usable - e.requested : 0),
                    e.prefix.time_ns, ++allocations_, weight};
    auto [slot, fresh] = live_blocks_.Insert(e.address, block);
    if (!fresh) {  // a free we never saw (made before tracing started)
      LiveBlock& old = live_blocks_.At(slot);
      Release(old.site, old.requested, old.mapped_bytes, old.slack);
      old = block;
    }
    Acquire(e.prefix.stack, block.requested, e.mapped_bytes, block.slack);
  }

  void OnFree(const FreeEvent& e) override {
    Seen(e.prefix);
    size_t slot = live_blocks_.Find(e.address);
    bool known = slot != AddressMap<LiveBlock>::kNone;
    uint64_t alloc_site = known ? live_blocks_.At(slot).site : 0;
    CostTotals& site = Site(e.prefix.stack ? e.prefix.stack : alloc_site);
    uint64_t weight = known ? live_blocks_.At(slot).weight : 1;
    bool before_attach = attached_ && !known;
    if (before_attach) ++report_->before_attach.frees;
    Charge(&site, [&](CostTotals* c) {
      if (!before_attach) c->frees += weight;
      AddSyscalls(c, e.syscalls, e.flags);
    });
    if (known) {
      // Its lifetime, and whether it was temporary: freed before any other
      // allocation was made.
      const LiveBlock b = live_blocks_.At(slot);
      live_blocks_.Erase(slot);
      CallSite& owner = SiteOf(b.site);
      owner.lifetimes[LifetimeBucket(e.prefix.time_ns - std::min(e.prefix.time_ns, b.time_ns))] +=
          b.weight;
      if (b.sequence == allocations_) owner.temporary_allocations += b.weight;
      Release(b.site, b.requested, b.mapped_bytes, b.slack);
    }
  }

  void OnMmap(const MmapEvent& e) override {
    Seen(e.prefix);
    CostTotals& site = Site(e.prefix.stack);
    uint64_t pages = PageBytes(e.length, page_size_);
    bool failed = e.flags & format::kFlagFailed;
    bool file = e.flags & format::kFlagFileBacked;
    if (!failed && !file && e.prot == 0) return Reserve(e);
    Charge(&site, [&](CostTotals* c) {
      AddSyscalls(c, e.syscalls, e.flags);
      if (failed) {
        ++c->failed_calls;
      } else if (file) {
        ++c->file_mappings;
      } else {
        ++c->mappings;
        ++c->own_mappings;
        c->own_requested_bytes += e.length;
        c->requested_bytes += e.length;
        c->page_bytes += pages;
        c->page_waste_bytes += pages - e.length;
      }
    });
    if (failed || file) return;
    histogram_.Add(e.length, true, pages - e.length);
    Unmap(e.address, pages);  // MAP_FIXED replaces what was there
    mappings_[e.address] = {e.address + pages, e.length, e.prefix.stack};
    Acquire(e.prefix.stack, e.length, pages, 0, /*direct=*/true);
  }

  // An anonymous PROT_NONE mapping: address space set aside (V8's heap,
  // Go's arenas, thread stacks' guards), counted apart from memory.
  void Reserve(const MmapEvent& e) {
    uint64_t pages = PageBytes(e.length, page_size_);
    Charge(&Site(e.prefix.stack), [&](CostTotals* c) {
      AddSyscalls(c, e.syscalls, e.flags);
      ++c->reservations;
      c->reserved_bytes += pages;
    });
    Unmap(e.address, pages);
    mappings_[e.address] = {e.address + pages, 0, e.prefix.stack, /*reserved=*/true};
    AddReserved(pages);
  }

  void AddReserved(uint64_t bytes) {
    reserved_bytes_ += bytes;
    report_->peak_reserved_bytes = std::max(report_->peak_reserved_bytes, reserved_bytes_);
  }

  // mprotect over [start, start + length): reserved pieces made accessible
  // become memory, charged to the call that made them so; accessible ones
  // made PROT_NONE go back to being reserved.
  void Protect(const MemoryCallEvent& e) {
    uint64_t start = e.address, end = e.address + PageBytes(e.length, page_size_);
    bool none = e.argument == 0;  // PROT_NONE
    SplitMappingAt(start);
    SplitMappingAt(end);
    for (auto it = mappings_.lower_bound(start); it != mappings_.end() && it->first < end; ++it) {
      LiveMapping& m = it->second;
      uint64_t bytes = m.end - it->first;
      if (m.reserved && !none) {
        m.reserved = false;
        m.requested = bytes;
        m.site = e.prefix.stack;
        reserved_bytes_ -= std::min(reserved_bytes_, bytes);
        Charge(&Site(m.site), [&](CostTotals* c) {
          c->made_accessible_bytes += bytes;
          c->requested_bytes += bytes;
          c->page_bytes += bytes;
        });
        Acquire(m.site, bytes, bytes, 0, /*direct=*/true);
      } else if (!m.reserved && none) {
        Release(m.site, m.requested, bytes, 0, /*direct=*/true);
        m.reserved = true;
        m.requested = 0;
        AddReserved(bytes);
      }
    }
  }

  // Splits the live mapping that straddles address into two at it, the
  // requested bytes front first, as Unmap does.
  void SplitMappingAt(uint64_t address) {
    auto it = mappings_.upper_bound(address);
    if (it == mappings_.begin()) return;
    --it;
    LiveMapping& m = it->second;
    if (it->first >= address || m.end <= address) return;
    uint64_t front = address - it->first;
    uint64_t front_requested = std::min(m.requested, front);
    LiveMapping back = {m.end, m.requested - front_requested, m.site, m.reserved};
    m.end = address;
    m.requested = front_requested;
    mappings_[address] = back;
  }

  void OnMunmap(const MunmapEvent& e) override {
    // A mapping measured at exit was not unmapped: usage only.
    bool at_exit = e.flags & format::kFlagAtExit;
    if (at_exit) Seen(e.prefix);
    if (!at_exit && attached_ && !(e.flags & format::kFlagFailed) &&
        !MapsAny(e.address, PageBytes(e.length, page_size_))) {
      // Memory mapped before the attach: its syscall counts, no unmapping.
      ++report_->before_attach.unmappings;
      report_->before_attach.unmapped_bytes += PageBytes(e.length, page_size_);
      ChargeCall(e, nullptr);
      return;
    }
    if (!at_exit && !ChargeCall(e, &CostTotals::unmappings)) return;
    uint64_t pages = PageBytes(e.length, page_size_);
    if (e.flags & format::kFlagUsageMeasured) {
      // What the mapping was used for belongs to the site that mapped it.
      auto it = mappings_.find(e.address);
      uint64_t site = it != mappings_.end() ? it->second.site : e.prefix.stack;
      Charge(&Site(site), [&](CostTotals* c) {
        ++c->usage_measured;
        c->resident_pages += e.resident_pages;
        c->used_bytes += e.used_bytes;
        // Waste in memory, not address space: the resident pages' bytes
        // beyond what was used (a reservation never touched costs nothing).
        uint64_t resident = e.resident_pages * page_size_;
        c->estimated_waste_bytes += resident - std::min(resident, e.used_bytes);
      });
    }
    if (!at_exit) Unmap(e.address, pages);
  }

  void OnMremap(const MremapEvent& e) override {
    if (!ChargeCall(e, &CostTotals::remappings)) return;
    uint64_t old_pages = PageBytes(e.old_length, page_size_);
    auto it = mappings_.find(e.old_address);
    bool ours = it != mappings_.end();
    uint64_t site = ours ? it->second.site : e.prefix.stack;
    bool reserved = ours && it->second.reserved;
    Unmap(e.old_address, old_pages);
    if (!ours) return;  // a mapping we did not see made (or a heap block's)
    uint64_t pages = PageBytes(e.new_length, page_size_);
    Unmap(e.new_address, pages);
    if (reserved) {
      mappings_[e.new_address] = {e.new_address + pages, 0, site, /*reserved=*/true};
      AddReserved(pages);
      return;
    }
    mappings_[e.new_address] = {e.new_address + pages, e.new_length, site};
    Acquire(site, e.new_length, pages, 0, /*direct=*/true);
  }

  void OnBrk(const BrkEvent& e) override {
    if (!(e.flags & format::kFlagAllocatorHeap)) {
      ChargeCall(e, &CostTotals::brk_calls);
      return;
    }
    // Where the allocator left the break: the brk heap's size now.
    Seen(e.prefix);
    held_.HeapSize(e.new_break > e.old_break ? e.new_break - e.old_break : 0);
  }
  void OnMemoryCall(const MemoryCallEvent& e) override {
    if (!ChargeCall(e, &CostTotals::memory_calls)) return;
    if (e.kind == format::SyscallKind::kMprotect) Protect(e);
  }

  void ShowProgress(const std::string& path, uint64_t total) { progress_.Show(path, total); }

  void Finish(const ReplayOptions& options) {
    Report& r = *report_;
    live_blocks_.ForEach(
        [&](uint64_t, const LiveBlock& block) { Leak(block.site, block.requested, block.weight); });
    for (const auto& [address, m] : mappings_) {
      if (m.reserved)
        report_->reserved_at_exit_bytes += m.end - address;
      else
        Leak(m.site, m.requested);
    }
    threads_.List(&r);
    r.process.events = events_;
    r.process.duration_ns = last_time_;  // event times count from the start
    for (const CallSite& site : sites_) r.summary.Add(site.cost);
    std::vector<CallSite> all(std::make_move_iterator(sites_.begin()),
                              std::make_move_iterator(sites_.end()));
    RankSites(all, options.top, &advice_, &r);
    r.memory_went = held_.highest();
    if (peak_pending_) SnapshotPeak();
    r.peak.page_bytes = r.peak_mapped_bytes;
    r.peak.live_mappings = peak_mappings_;
    ListPeakSites(std::move(peak_sites_), options.top, &r);
    NameSites(options, &frames_, nodes_, modules_, sample_weights_.interval(), &r);
    r.page_steps = std::move(page_steps_);
    for (const ModuleInfo& m : modules_)
      if (!m.build_id.empty()) r.module_build_ids[m.path] = m.build_id;
    what_if_.Finish();
    r.timeline = timeline_.Samples();
    r.timeline_interval_ns = timeline_.interval_ns();
    r.what_if_page_sizes = what_if_.page_sizes();
    r.what_if_allocators = what_if_.allocators();
    r.histogram = histogram_.Buckets();
  }

 private:
  void Seen(const EventPrefix& p) {
    if (events_++ == 0 && symbolize_) WarmSymbolizer();
    last_time_ = std::max(last_time_, p.time_ns);
    if (p.tid != current_tid_ || !current_thread_) {
      current_tid_ = p.tid;
      current_thread_ = threads_.Of(p.tid);
    }
  }

  // The site of a stack id. Ids are dense (the n-th stack node has id n), so
  // a vector finds them; an id no node has (a damaged trace) goes to a map.
  CallSite& SiteOf(uint64_t stack) {
    if (stack == last_stack_ && last_site_) return *last_site_;
    uint32_t* index;
    if (stack <= nodes_.size()) {
      if (site_index_.size() <= stack) site_index_.resize(nodes_.size() + 1);
      index = &site_index_[stack];
    } else {
      index = &far_site_index_[stack];
    }
    if (*index == 0) {
      sites_.emplace_back().stack_id = stack;
      *index = static_cast<uint32_t>(sites_.size());
    }
    last_stack_ = stack;
    last_site_ = &sites_[*index - 1];
    return *last_site_;
  }
  CostTotals& Site(uint64_t stack) { return SiteOf(stack).cost; }

  // At the first event, with the modules and the stack nodes known so far.
  void WarmSymbolizer() {
    std::vector<uint64_t> ips;
    for (const auto& [parent, ip] : nodes_)
      if (ip) ips.push_back(ip);
    frames_.Warm(modules_, std::move(ips));
  }

  // A call that is counted and charged but holds no memory of its own
  // (munmap, mremap, brk): its syscalls, and either counter (if any) or
  // failed_calls. Returns whether it succeeded.
  template <typename Event>
  bool ChargeCall(const Event& e, uint64_t CostTotals::*counter) {
    Seen(e.prefix);
    bool ok = !(e.flags & format::kFlagFailed);
    Charge(&Site(e.prefix.stack), [&](CostTotals* c) {
      AddSyscalls(c, e.syscalls, e.flags);
      if (!ok || counter) ++(c->*(ok ? counter : &CostTotals::failed_calls));
    });
    return ok;
  }

  // Whether any live mapping overlaps [start, start + length).
  bool MapsAny(uint64_t start, uint64_t length) const {
    auto it = mappings_.upper_bound(start);
    if (it != mappings_.begin() && std::prev(it)->second.end > start) return true;
    return it != mappings_.end() && it->first < start + length;
  }

  // Applies f to the site and the current event's thread alike. The process
  // summary is the sum of the sites (Finish).
  template <typename F>
  void Charge(CostTotals* site, F f) {
    f(site);
    f(current_thread_ ? current_thread_ : threads_.Of(current_tid_));
  }

  static void AddSyscalls(CostTotals* c, const SyscallCounts& s, uint32_t flags) {
    if (flags & format::kFlagSyscallsEstimated) ++c->estimated_calls;
    uint32_t any = 0;
    for (uint32_t n : s.count) any |= n;
    if (!any) return;  // most calls
    for (int i = 0; i < format::kSyscallKinds; ++i) c->syscalls[i] += s.count[i];
    c->syscall_ns += s.ns;
  }

  void OnChunk(uint64_t offset) override { progress_.At(offset); }

  // Every change of the live set goes through these two: the peaks, the
  // sites' live pages and the what-if models follow it.
  void Acquire(uint64_t site, uint64_t requested, uint64_t mapped, uint64_t slack = 0,
               bool direct = false) {
    held_.Acquire(requested, mapped, slack, direct, last_time_);
    live_bytes_ += requested;
    mapped_bytes_ += mapped;
    what_if_.Acquire(requested, mapped != 0);
    report_->peak_live_bytes = std::max(report_->peak_live_bytes, live_bytes_);
    if (mapped) {
      site_pages_[site] += mapped;
      peak_mappings_ = std::max(peak_mappings_, ++live_mappings_);
      advice_.Acquire(site, requested);
    }
    if (mapped) own_requested_ += requested;
    if (mapped_bytes_ > report_->peak_mapped_bytes) {
      report_->peak_mapped_bytes = mapped_bytes_;
      report_->peak.time_ns = last_time_;
      peak_pending_ = true;
    }
    Sample();
  }

  void Sample() {
    timeline_.Record(last_time_, live_bytes_, mapped_bytes_,
                     mapped_bytes_ - std::min(mapped_bytes_, own_requested_));
    if (mapped_bytes_ == (page_steps_.empty() ? 0 : page_steps_.back().last)) return;
    uint64_t millisecond = last_time_ / kPageStepNs * kPageStepNs;
    if (page_steps_.empty() || page_steps_.back().time_ns != millisecond) {
      uint64_t before = page_steps_.empty() ? 0 : page_steps_.back().last;
      page_steps_.push_back({millisecond, std::max(before, mapped_bytes_), mapped_bytes_});
      return;
    }
    PageStep& step = page_steps_.back();
    step.highest = std::max(step.highest, mapped_bytes_);
    step.last = mapped_bytes_;
  }

  void Release(uint64_t site, uint64_t requested, uint64_t mapped, uint64_t slack = 0,
               bool direct = false) {
    // Leaving a new peak: who held the pages at its top.
    if (mapped && peak_pending_) SnapshotPeak();
    held_.Release(requested, mapped, slack, direct);
    live_bytes_ -= std::min(live_bytes_, requested);
    mapped_bytes_ -= std::min(mapped_bytes_, mapped);
    what_if_.Release(requested, mapped != 0);
    if (mapped) {
      auto it = site_pages_.find(site);
      if (it != site_pages_.end() && (it->second -= std::min(it->second, mapped)) == 0)
        site_pages_.erase(it);
      if (live_mappings_) --live_mappings_;
      own_requested_ -= std::min(own_requested_, requested);
      advice_.Release(site, requested);
    }
    Sample();
  }

  void SnapshotPeak() {
    peak_pending_ = false;
    peak_sites_.assign(site_pages_.begin(), site_pages_.end());
  }

  // Removes [start, start + length) from the live mappings, splitting any
  // mapping it cuts. A piece keeps the part of the requested bytes that fell
  // inside it, front first.
  void Unmap(uint64_t start, uint64_t length) {
    uint64_t end = start + length;
    auto it = mappings_.upper_bound(start);
    if (it != mappings_.begin()) --it;
    while (it != mappings_.end() && it->first < end) {
      uint64_t m_start = it->first;
      LiveMapping m = it->second;
      if (m.end <= start) {
        ++it;
        continue;
      }
      it = mappings_.erase(it);
      uint64_t before = start > m_start ? start - m_start : 0;
      uint64_t after = m.end > end ? m.end - end : 0;
      uint64_t removed = (m.end - m_start) - before - after;
      uint64_t req_before = std::min(m.requested, before);
      uint64_t req_removed = std::min(m.requested - req_before, removed);
      uint64_t req_after = m.requested - req_before - req_removed;
      if (m.reserved)
        reserved_bytes_ -= std::min(reserved_bytes_, removed);
      else
        Release(m.site, req_removed, removed, 0, /*direct=*/true);
      if (before) mappings_[m_start] = {start, req_before, m.site, m.reserved};
      if (after) it = mappings_.insert({end, {m.end, req_after, m.site, m.reserved}}).first;
    }
  }

  void Leak(uint64_t stack, uint64_t requested, uint64_t count = 1) {
    CallSite& site = SiteOf(stack);
    site.leaked_allocations += count;
    site.leaked_bytes += requested;
    report_->leaked_allocations += count;
    report_->leaked_bytes += requested;
  }

  Report* report_;
  bool attached_ = false;
  uint64_t page_size_ = 4096;
  SampleWeights sample_weights_;
  WhatIf what_if_;
  Timeline timeline_;
  uint64_t allocations_ = 0;  // malloc-family allocations so far
  Reconciliation held_;  // where the memory went
  ReplayProgress progress_;
  SiteAdvice advice_;
  uint64_t own_requested_ = 0;  // requested bytes of the own mappings live
  std::map<uint64_t, uint64_t> site_pages_;  // page bytes of own mappings live, by site
  std::vector<std::pair<uint64_t, uint64_t>> peak_sites_;
  bool peak_pending_ = false;
  uint64_t live_mappings_ = 0;
  uint64_t peak_mappings_ = 0;
  std::vector<ModuleInfo> modules_;
  std::set<std::pair<std::string, uint64_t>> modules_seen_;  // path, load bias
  bool symbolize_ = true;  // warm a symbolizer at the first event
  SiteFrames frames_;
  StackNodes nodes_;
  AddressMap<LiveBlock> live_blocks_;
  std::map<uint64_t, LiveMapping> mappings_;
  std::deque<CallSite> sites_;          // in order of first use; never moved
  std::vector<uint32_t> site_index_;    // stack id -> 1 + index in sites_, 0: none
  std::unordered_map<uint64_t, uint32_t> far_site_index_;
  uint64_t last_stack_ = 0;
  CallSite* last_site_ = nullptr;
  ThreadCosts threads_;
  uint32_t current_tid_ = 0;
  CostTotals* current_thread_ = nullptr;
  SizeHistogram histogram_;
  uint64_t live_bytes_ = 0;
  uint64_t mapped_bytes_ = 0;
  std::vector<PageStep> page_steps_;
  uint64_t reserved_bytes_ = 0;  // PROT_NONE pieces of live mappings
  uint64_t events_ = 0;
  uint64_t last_time_ = 0;
};

}  // namespace

bool ReplayTrace(const std::string& path, const ReplayOptions& options,
                 Report* report, std::string* err) {
  std::unique_ptr<ByteSource> source = OpenFileSource(path, err);
  if (!source) return false;
  std::error_code size_error;
  uint64_t size = std::filesystem::file_size(path, size_error);
  ReplayOptions reading = options;
  reading.module_files.read_as = Symbolizer::ReaderFor(path);
  return ReplaySource(std::move(source), path, size_error ? 0 : size, reading, report, err);
}

bool ReplaySource(std::unique_ptr<ByteSource> source, const std::string& name, uint64_t size,
                  const ReplayOptions& options, Report* report, std::string* err) {
  TraceReader reader(std::move(source));
  ProcessInfo& p = report->process;
  p.trace_path = name;
  if (!reader.ReadHeader(&p.header, err)) {
    *err = name + ": " + *err;
    return false;
  }
  Replayer replayer(report, p.header.process.page_size, p.header.process.sample_interval_bytes,
                    options);
  if (p.header.flags & format::kHeaderHasSymbols) replayer.UseEmbeddedSymbols();
  if (p.header.flags & format::kHeaderAttached) replayer.StartsAtAttach();
  if (options.progress_from_bytes && size >= options.progress_from_bytes)
    replayer.ShowProgress(name, size);
  std::ifstream max_map_count("/proc/sys/vm/max_map_count");
  max_map_count >> report->peak.max_map_count;
  ReadResult result = reader.ReadRecords(&replayer);
  p.status = result.status;
  p.status_message = result.message;
  p.events_lost = result.events_lost;
  p.stacks_cut = result.stacks_cut;
  p.symbols_missing = result.symbols_missing;
  p.trace_bytes = result.bytes;
  if (result.has_end) p.end = result.end;
  replayer.Finish(options);
  AddObserverCounts(report);
  return true;
}

}  // namespace pagewaste
