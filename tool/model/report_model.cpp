// The report model's logic: cost totals added and merged, the order sites
// are ranked and shown in, their keys across runs, the names of frames, end
// reasons and backends, and the sentence that says why a site enters the
// kernel.
#include "report_model.h"

#include "program_code.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>
#include <unordered_map>

#include <fmt/format.h>

#include <vector>

namespace pagewaste {
namespace {

uint64_t Of(const CostTotals& c, format::SyscallKind kind) {
  return c.syscalls[static_cast<int>(kind)];
}

}  // namespace

void CostTotals::Add(const CostTotals& o) {
  allocations += o.allocations;
  frees += o.frees;
  mappings += o.mappings;
  unmappings += o.unmappings;
  file_mappings += o.file_mappings;
  remappings += o.remappings;
  brk_calls += o.brk_calls;
  memory_calls += o.memory_calls;
  reservations += o.reservations;
  reserved_bytes += o.reserved_bytes;
  made_accessible_bytes += o.made_accessible_bytes;
  failed_calls += o.failed_calls;
  requested_bytes += o.requested_bytes;
  usable_bytes += o.usable_bytes;
  own_usable_bytes += o.own_usable_bytes;
  own_mappings += o.own_mappings;
  own_requested_bytes += o.own_requested_bytes;
  page_bytes += o.page_bytes;
  page_waste_bytes += o.page_waste_bytes;
  for (int i = 0; i < format::kSyscallKinds; ++i) syscalls[i] += o.syscalls[i];
  syscall_ns += o.syscall_ns;
  estimated_calls += o.estimated_calls;
  usage_measured += o.usage_measured;
  resident_pages += o.resident_pages;
  used_bytes += o.used_bytes;
  estimated_waste_bytes += o.estimated_waste_bytes;
  sampled_bytes += o.sampled_bytes;
}

uint64_t SamplingErrorBytes(uint64_t interval, uint64_t bytes) {
  if (!interval) return 0;
  return static_cast<uint64_t>(std::llround(std::sqrt(static_cast<double>(interval) * static_cast<double>(bytes))));
}

namespace {

template <typename Key>
bool Ranked(const CallSite& a, const CallSite& b, Key key) {
  auto ka = key(a), kb = key(b);
  if (ka != kb) return ka > kb;
  return a.key < b.key;
}

}  // namespace

bool ByWaste(const CallSite& a, const CallSite& b) {
  return Ranked(a, b, [](const CallSite& s) {
    return std::make_tuple(s.cost.waste_bytes(), SumSyscalls(s.cost.syscalls),
                           s.cost.requested_bytes, s.cost.allocations);
  });
}

bool BySyscalls(const CallSite& a, const CallSite& b) {
  return Ranked(a, b, [](const CallSite& s) {
    return std::make_tuple(SumSyscalls(s.cost.syscalls), s.cost.calls());
  });
}

bool ByLeaked(const CallSite& a, const CallSite& b) {
  return Ranked(a, b, [](const CallSite& s) {
    return std::make_tuple(s.leaked_bytes, s.leaked_allocations);
  });
}

SitesShown ShownSites(const std::vector<CallSite>& all, size_t n) {
  SitesShown shown;
  if (!n || all.size() <= n) {
    shown.sites = all;
    return shown;
  }
  std::vector<char> keep(all.size(), 0);
  auto mark = [&](auto order) {
    std::vector<size_t> index(all.size());
    for (size_t i = 0; i < index.size(); ++i) index[i] = i;
    std::partial_sort(index.begin(), index.begin() + static_cast<ptrdiff_t>(n), index.end(),
                      [&](size_t a, size_t b) { return order(all[a], all[b]); });
    for (size_t i = 0; i < n; ++i) keep[index[i]] = 1;
  };
  mark(ByWaste);
  mark(BySyscalls);
  mark(ByLeaked);
  mark([](const CallSite& a, const CallSite& b) {
    return Ranked(a, b, [](const CallSite& s) { return s.cost.allocations; });
  });
  for (size_t i = 0; i < all.size(); ++i) {
    if (keep[i]) {
      shown.sites.push_back(all[i]);
      continue;
    }
    ++shown.other_sites;
    shown.other.Add(all[i].cost);
    shown.other_leaked_allocations += all[i].leaked_allocations;
    shown.other_leaked_bytes += all[i].leaked_bytes;
  }
  std::stable_sort(shown.sites.begin(), shown.sites.end(), ByWaste);
  return shown;
}

void MergeSite(CallSite* into, const CallSite& site) {
  // The frames and advice stay those of the larger part.
  if (ByWaste(site, *into)) {
    into->frames = site.frames;
    into->advice = site.advice;
  }
  into->cost.Add(site.cost);
  into->leaked_allocations += site.leaked_allocations;
  into->leaked_bytes += site.leaked_bytes;
  into->temporary_allocations += site.temporary_allocations;
  for (int b = 0; b < kLifetimeBuckets; ++b) into->lifetimes[b] += site.lifetimes[b];
  // Independent estimates: their errors add in quadrature.
  into->sampling_error_bytes = static_cast<uint64_t>(
      std::llround(std::hypot(static_cast<double>(into->sampling_error_bytes),
                              static_cast<double>(site.sampling_error_bytes))));
}

void MergeSameKey(std::vector<CallSite>* sites) {
  std::unordered_map<std::string, size_t> by_key;
  std::vector<CallSite> out;
  out.reserve(sites->size());
  for (CallSite& site : *sites) {
    // A frame without module or function is named by its address alone,
    // which no other run shares: such stacks stay apart, as do stacks not
    // symbolized at all (no frames), which all have the empty key.
    bool resolved = !site.frames.empty() &&
                    std::all_of(site.frames.begin(), site.frames.end(), [](const Frame& f) {
                      return !f.function.empty() || !f.module.empty();
                    });
    if (!resolved) {
      out.push_back(std::move(site));
      continue;
    }
    auto [it, fresh] = by_key.emplace(site.key, out.size());
    if (fresh)
      out.push_back(std::move(site));
    else
      MergeSite(&out[it->second], site);
  }
  *sites = std::move(out);
}

void Losses::Add(const ProcessInfo& p) {
  incomplete_traces += p.status != TraceStatus::kComplete;
  chunks += p.chunks_lost();
  events += p.events_lost;
  bytes += p.bytes_lost();
}

std::string ValidUtf8(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  for (size_t i = 0; i < s.size();) {
    unsigned char c = byte(i);
    size_t length = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    bool ok = length > 0 && i + length <= s.size();
    for (size_t k = 1; ok && k < length; ++k) ok = (byte(i + k) & 0xc0) == 0x80;
    if (ok && length > 1) {
      // No overlong forms, surrogates or code points past U+10FFFF.
      uint32_t cp = c & (0x7f >> length);
      for (size_t k = 1; k < length; ++k) cp = (cp << 6) | (byte(i + k) & 0x3f);
      static constexpr uint32_t kLeast[] = {0, 0, 0x80, 0x800, 0x10000};
      ok = cp >= kLeast[length] && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff);
    }
    if (ok) {
      out.append(s, i, length);
      i += length;
    } else {
      out += "\xef\xbf\xbd";
      ++i;
    }
  }
  return out;
}

std::string Counted(uint64_t n, const char* singular, const char* plural) {
  return GroupDigits(n) + " " + (n == 1 ? singular : plural);
}

std::string SyscallName(int kind) { return format::kSyscallNames[kind]; }

std::string FrameName(const Frame& f) {
  if (!f.function.empty()) return f.function;
  if (f.module.empty()) return fmt::format("?? ({:#x})", f.address);
  return fmt::format("?? ({}+{:#x})", f.module.substr(f.module.rfind('/') + 1), f.module_offset);
}

namespace {

// FNV-1a (64 bits) over the frames' symbolized names: function and file
// name without its directory, or the module's name where the function is
// unknown; with lines (and offsets, and the inlined mark) when asked.
std::string HashFrames(const Stack& frames, bool with_lines) {
  auto base_name = [](const std::string& path) { return path.substr(path.rfind('/') + 1); };
  uint64_t hash = 0xcbf29ce484222325ull;
  auto mix = [&hash](const std::string& text) {
    for (unsigned char c : text) hash = (hash ^ c) * 0x100000001b3ull;
    hash = (hash ^ 0xff) * 0x100000001b3ull;  // a separator no text holds
  };
  for (const Frame& f : frames) {
    if (f.function.empty()) {
      mix("?" + base_name(f.module));
      if (with_lines) mix(std::to_string(f.module_offset));
      // Code no module maps (a JIT's): only its address tells it apart.
      if (with_lines && f.module.empty()) mix("@" + std::to_string(f.address));
    } else {
      mix(f.function);
      mix(base_name(f.file));
      if (with_lines) mix(std::to_string(f.line));
    }
    if (with_lines) mix(f.inlined ? "i" : "");
  }
  return fmt::format("{:016x}", hash);
}

}  // namespace

std::string SiteKey(const Stack& frames) {
  return frames.empty() ? std::string() : HashFrames(frames, true);
}

std::string SiteMatchKey(const Stack& frames) { return HashFrames(frames, false); }

const char* EndReasonName(format::EndReason reason) {
  switch (reason) {
    case format::EndReason::kExit: return "exit";
    case format::EndReason::kUnderscoreExit: return "_exit";
    case format::EndReason::kSignal: return "signal";
    case format::EndReason::kExec: return "exec";
    case format::EndReason::kDetach: return "detach";
    case format::EndReason::kRawExit: return "raw_exit";
  }
  return "unknown";
}

const char* BackendName(format::Backend backend) {
  switch (backend) {
    case format::Backend::kPtrace: return "ptrace";
    case format::Backend::kBpf: return "bpf";
    default: return "preload";
  }
}

std::string SyscallPattern(const CostTotals& c) {
  using K = format::SyscallKind;
  std::vector<std::string> parts;
  uint64_t requests = c.allocations + c.mappings;
  uint64_t releases = c.frees + c.unmappings;
  std::string calls = Counted(c.calls(), "call", "calls");
  if (uint64_t n = Of(c, K::kMmap); n && c.own_mappings)
    parts.push_back(fmt::format("{} maps its own pages: {} mmap for {}",
                                c.own_mappings == requests
                                    ? "each allocation"
                                    : Counted(c.own_mappings, "allocation", "allocations"),
                                GroupDigits(n), Counted(requests, "allocation", "allocations")));
  else if (n)
    parts.push_back(
        fmt::format("the allocator maps more memory: {} mmap for {}", GroupDigits(n), calls));
  if (uint64_t n = Of(c, K::kMunmap); n && releases)
    parts.push_back(fmt::format("{} unmaps its pages: {} munmap for {}",
                                n >= releases ? "each free" : "frees", GroupDigits(n),
                                Counted(releases, "free", "frees")));
  else if (n)
    parts.push_back(fmt::format("{} munmap for {}", GroupDigits(n), calls));
  if (uint64_t n = Of(c, K::kMremap))
    parts.push_back(fmt::format("blocks are resized in the kernel: {} mremap", GroupDigits(n)));
  if (uint64_t n = Of(c, K::kBrk))
    parts.push_back(fmt::format("the heap moves its break: {} brk for {}", GroupDigits(n), calls));
  if (uint64_t n = Of(c, K::kMadvise))
    parts.push_back(fmt::format("freed memory goes back to the kernel: {} madvise", GroupDigits(n)));
  if (uint64_t n = Of(c, K::kMprotect))
    parts.push_back(fmt::format("new arena memory is made usable: {} mprotect", GroupDigits(n)));
  if (uint64_t n = Of(c, K::kOther))
    parts.push_back(Counted(n, "other system call", "other system calls"));
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? "; " : "") + parts[i];
  return out;
}

void AddObserverCounts(Report* report) {
  const std::optional<EndEvent>& end = report->process.end;
  if (!end || !end->observed_syscalls.Total()) return;
  SyscallTotals outside{};
  for (int i = 0; i < format::kSyscallKinds; ++i) {
    if (i == static_cast<int>(format::SyscallKind::kOther)) continue;  // not observed
    uint64_t known = report->summary.syscalls[i] + end->shim_syscalls.count[i];
    uint64_t seen = end->observed_syscalls.count[i];
    outside[i] = seen > known ? seen - known : 0;
  }
  report->outside_syscalls = outside;
  SyscallTotals before{};
  for (int i = 0; i < format::kSyscallKinds; ++i) before[i] = end->before_start_syscalls.count[i];
  report->before_start_syscalls = before;
}

}  // namespace pagewaste
