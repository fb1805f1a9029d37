// The few pieces of the report model that are logic rather than data: names,
// and the sentence that explains why a call site enters the kernel.
#include "report_model.h"

#include <cmath>

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
  own_mappings += o.own_mappings;
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

CombinedTotals Combine(const std::vector<Report>& reports) {
  CombinedTotals c;
  for (const Report& r : reports) {
    ++c.processes;
    c.cost.Add(r.summary);
    c.leaked_allocations += r.leaked_allocations;
    c.leaked_bytes += r.leaked_bytes;
  }
  return c;
}

std::string GroupDigits(uint64_t v) {
  std::string digits = std::to_string(v), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string SyscallName(int kind) { return format::kSyscallNames[kind]; }

std::string SiteKey(const std::vector<Frame>& frames) {
  if (frames.empty()) return {};
  auto base_name = [](const std::string& path) { return path.substr(path.rfind('/') + 1); };
  uint64_t hash = 0xcbf29ce484222325ull;  // FNV-1a, 64 bits
  auto mix = [&hash](const std::string& text) {
    for (unsigned char c : text) hash = (hash ^ c) * 0x100000001b3ull;
    hash = (hash ^ 0xff) * 0x100000001b3ull;  // a separator no text holds
  };
  for (const Frame& f : frames) {
    if (f.function.empty()) {
      mix("?" + base_name(f.module));
      mix(std::to_string(f.module_offset));
    } else {
      mix(f.function);
      mix(base_name(f.file));
      mix(std::to_string(f.line));
    }
    mix(f.inlined ? "i" : "");
  }
  return fmt::format("{:016x}", hash);
}

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
  return backend == format::Backend::kPtrace ? "ptrace" : "preload";
}

std::string SyscallPattern(const CostTotals& c) {
  using K = format::SyscallKind;
  std::vector<std::string> parts;
  uint64_t requests = c.allocations + c.mappings;
  uint64_t releases = c.frees + c.unmappings;
  if (uint64_t n = Of(c, K::kMmap); n && c.own_mappings)
    parts.push_back(fmt::format("{} maps its own pages: {} mmap for {} allocations",
                                c.own_mappings == requests ? "each allocation"
                                                           : GroupDigits(c.own_mappings) + " allocations",
                                GroupDigits(n), GroupDigits(requests)));
  else if (n)
    parts.push_back(fmt::format("the allocator maps more memory: {} mmap for {} calls", GroupDigits(n),
                                GroupDigits(c.calls())));
  if (uint64_t n = Of(c, K::kMunmap); n && releases)
    parts.push_back(fmt::format("{} unmaps its pages: {} munmap for {} frees",
                                n >= releases ? "each free" : "frees", GroupDigits(n), GroupDigits(releases)));
  else if (n)
    parts.push_back(fmt::format("{} munmap for {} calls", GroupDigits(n), GroupDigits(c.calls())));
  if (uint64_t n = Of(c, K::kMremap))
    parts.push_back(fmt::format("blocks are resized in the kernel: {} mremap", GroupDigits(n)));
  if (uint64_t n = Of(c, K::kBrk))
    parts.push_back(fmt::format("the heap moves its break: {} brk for {} calls", GroupDigits(n),
                                GroupDigits(c.calls())));
  if (uint64_t n = Of(c, K::kMadvise))
    parts.push_back(fmt::format("freed memory goes back to the kernel: {} madvise", GroupDigits(n)));
  if (uint64_t n = Of(c, K::kMprotect))
    parts.push_back(fmt::format("new arena memory is made usable: {} mprotect", GroupDigits(n)));
  if (uint64_t n = Of(c, K::kOther))
    parts.push_back(fmt::format("{} other system calls (lock waits and the like)", GroupDigits(n)));
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? "; " : "") + parts[i];
  return out;
}

}  // namespace pagewaste
