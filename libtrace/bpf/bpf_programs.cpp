// See bpf_programs.h.
#include "bpf_programs.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>

#include "bpf_events.h"
#include "allocator_calls.skel.h"
#include "memory_syscalls.skel.h"
#include "ptrace/proc_maps.h"

namespace pagewaste::bpf {
namespace {

constexpr int kCapSysAdmin = 21;
constexpr int kCapPerfmon = 38;
constexpr int kCapBpf = 39;

bool HasCapability(uint64_t set, int capability) { return (set >> capability) & 1; }

// Whether we are in the initial pid namespace: the programs see the
// kernel's pids, which are ours only there (/proc/self/status's NSpid
// lists one pid per namespace level).
bool InInitialPidNamespace() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("NSpid:", 0) != 0) continue;
    return line.find_first_of(" \t", line.find_first_not_of(" \t", 6)) == std::string::npos;
  }
  return true;  // a kernel without NSpid has no nested namespaces to tell
}

// libbpf's own messages: kept back, the last warning said when loading fails.
std::string g_libbpf_last;
int KeepLibbpfMessage(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char line[512];
  vsnprintf(line, sizeof line, format, args);
  g_libbpf_last = line;
  while (!g_libbpf_last.empty() && g_libbpf_last.back() == '\n') g_libbpf_last.pop_back();
  return 0;
}

}  // namespace

bool CanLoad(std::string* why) {
  struct stat st;
  if (stat("/sys/kernel/btf/vmlinux", &st) != 0) {
    *why = "the kernel has no BTF (/sys/kernel/btf/vmlinux), which the BPF programs need";
    return false;
  }
  std::optional<uint64_t> caps = ptrace::CapabilitiesOf(getpid(), "CapEff");
  uint64_t effective = caps.value_or(geteuid() == 0 ? ~uint64_t{0} : 0);
  bool may = HasCapability(effective, kCapSysAdmin) ||
             (HasCapability(effective, kCapBpf) && HasCapability(effective, kCapPerfmon));
  if (!may) {
    *why = "loading BPF programs needs root, or CAP_BPF and CAP_PERFMON";
    return false;
  }
  if (!InInitialPidNamespace()) {
    *why = "pagewaste runs in a pid namespace of its own, and the BPF programs see the host's "
           "process ids";
    return false;
  }
  return true;
}

BpfPrograms::~BpfPrograms() {
  Detach();
  if (ring_) ring_buffer__free(ring_);
  if (allocator_) allocator_calls__destroy(allocator_);
  if (skeleton_) memory_syscalls__destroy(skeleton_);
}

bool BpfPrograms::LoadAllocatorProbes(uint64_t sample_bytes, std::string* err) {
  if (allocator_) return true;
  allocator_ = allocator_calls__open();
  if (!allocator_) {
    *err = std::string("cannot open the allocator probes: ") + strerror(errno);
    return false;
  }
  allocator_->rodata->wakeup_bytes = skeleton_->rodata->wakeup_bytes;
  allocator_->rodata->sample_interval = sample_bytes;
  // One ring, one table of traced processes, one mark of allocator calls.
  int failed = bpf_map__reuse_fd(allocator_->maps.events, bpf_map__fd(skeleton_->maps.events));
  if (!failed)
    failed = bpf_map__reuse_fd(allocator_->maps.traced, bpf_map__fd(skeleton_->maps.traced));
  if (!failed)
    failed = bpf_map__reuse_fd(allocator_->maps.allocator_depth,
                               bpf_map__fd(skeleton_->maps.allocator_depth));
  if (!failed) failed = allocator_calls__load(allocator_);
  if (failed) {
    *err = std::string("cannot load the allocator probes: ") + strerror(-failed);
    if (!g_libbpf_last.empty()) *err += " (libbpf: " + g_libbpf_last + ")";
    return false;
  }
  // The gaps between picks: quantiles of the exponential distribution
  // with mean sample_bytes.
  for (uint32_t i = 0; sample_bytes && i < PW_SAMPLE_GAPS; ++i) {
    double quantile = (i + 0.5) / PW_SAMPLE_GAPS;
    uint64_t gap = static_cast<uint64_t>(-std::log(quantile) * static_cast<double>(sample_bytes));
    if (gap == 0) gap = 1;
    bpf_map__update_elem(allocator_->maps.sample_gaps, &i, sizeof i, &gap, sizeof gap, BPF_ANY);
  }
  return true;
}

bool BpfPrograms::ProbeAllocator(pid_t pid, const std::string& libc_path, uint64_t sample_bytes,
                                 std::string* err) {
  if (!LoadAllocatorProbes(sample_bytes, err)) return false;
  struct Probe {
    bpf_program* program;
    const char* function;
    bool at_return;
  };
  auto& p = allocator_->progs;
  const Probe probes[] = {
      {p.malloc_entry, "malloc", false},
      {p.calloc_entry, "calloc", false},
      {p.realloc_entry, "realloc", false},
      {p.posix_memalign_entry, "posix_memalign", false},
      {p.aligned_alloc_entry, "aligned_alloc", false},
      {p.memalign_entry, "memalign", false},
      {p.free_entry, "free", false},
      {p.allocation_return, "malloc", true},
      {p.allocation_return, "calloc", true},
      {p.allocation_return, "realloc", true},
      {p.allocation_return, "posix_memalign", true},
      {p.allocation_return, "aligned_alloc", true},
      {p.allocation_return, "memalign", true},
      {p.allocation_return, "free", true},
  };
  std::vector<bpf_link*>& links = allocator_links_[pid];
  for (const Probe& probe : probes) {
    LIBBPF_OPTS(bpf_uprobe_opts, options, .retprobe = probe.at_return,
                .func_name = probe.function);
    bpf_link* link = bpf_program__attach_uprobe_opts(probe.program, pid, libc_path.c_str(), 0,
                                                     &options);
    if (!link) {
      *err = std::string("cannot put a probe on ") + probe.function + " in " + libc_path + ": " +
             strerror(errno);
      return false;
    }
    links.push_back(link);
  }
  return true;
}

bool BpfPrograms::Load(uint64_t ring_bytes, uint64_t wakeup_bytes, std::string* err) {
  libbpf_set_print(KeepLibbpfMessage);
  skeleton_ = memory_syscalls__open();
  if (!skeleton_) {
    *err = std::string("cannot open the BPF programs: ") + strerror(errno);
    return false;
  }
  skeleton_->rodata->wakeup_bytes = wakeup_bytes;
  bpf_map__set_max_entries(skeleton_->maps.events, static_cast<uint32_t>(ring_bytes));
  int failed = memory_syscalls__load(skeleton_);
  if (failed == 0) failed = memory_syscalls__attach(skeleton_);
  if (failed != 0) {
    int error = -failed;
    *err = std::string("cannot load the BPF programs: ") + strerror(error);
    if (!g_libbpf_last.empty()) *err += " (libbpf: " + g_libbpf_last + ")";
    return false;
  }
  ring_ = ring_buffer__new(bpf_map__fd(skeleton_->maps.events), OnRecord, this, nullptr);
  if (!ring_) {
    *err = std::string("cannot read the BPF ring buffer: ") + strerror(errno);
    return false;
  }
  return true;
}

bool BpfPrograms::Trace(pid_t pid, bool recording) {
  uint32_t key = static_cast<uint32_t>(pid);
  pw_process value = {};
  value.recording = recording ? 1 : 0;
  return bpf_map__update_elem(skeleton_->maps.traced, &key, sizeof key, &value, sizeof value,
                              BPF_ANY) == 0;
}

bool BpfPrograms::MarkThreads(pid_t pid, uint64_t address, uint64_t bytes) {
  uint32_t key = static_cast<uint32_t>(pid);
  pw_thread_marks value = {address, bytes};
  return bpf_map__update_elem(skeleton_->maps.thread_marks, &key, sizeof key, &value,
                              sizeof value, BPF_ANY) == 0;
}

uint64_t BpfPrograms::Forget(pid_t pid) {
  auto probes = allocator_links_.find(pid);
  if (probes != allocator_links_.end()) {
    for (bpf_link* link : probes->second) bpf_link__destroy(link);
    allocator_links_.erase(probes);
  }
  uint32_t key = static_cast<uint32_t>(pid);
  bpf_map__delete_elem(skeleton_->maps.thread_marks, &key, sizeof key, 0);
  pw_process value = {};
  if (bpf_map__lookup_and_delete_elem(skeleton_->maps.traced, &key, sizeof key, &value,
                                      sizeof value, 0) != 0)
    return 0;
  return value.lost_events;
}

int BpfPrograms::OnRecord(void* context, void* data, size_t size) {
  auto* self = static_cast<BpfPrograms*>(context);
  (*self->handler_)(data, size);
  return 0;
}

int BpfPrograms::Poll(int timeout_ms, const Handler& handler) {
  handler_ = &handler;
  // Records come without a wake-up until many wait: poll's timeout is
  // what reads them then, so the ring is read whether it woke us or not.
  int woken = ring_buffer__poll(ring_, timeout_ms);
  int read = woken < 0 && woken != -EINTR ? woken : ring_buffer__consume(ring_);
  handler_ = nullptr;
  if (read < 0 && read != -EINTR) return -1;
  return (woken > 0 ? woken : 0) + (read > 0 ? read : 0);
}

void BpfPrograms::Wait(int timeout_ms) {
  struct epoll_event event;
  epoll_wait(ring_buffer__epoll_fd(ring_), &event, 1, timeout_ms);
}

int BpfPrograms::Consume(const Handler& handler) {
  handler_ = &handler;
  int read = ring_buffer__consume(ring_);
  handler_ = nullptr;
  return read < 0 && read != -EINTR ? -1 : (read > 0 ? read : 0);
}

void BpfPrograms::Detach() {
  for (auto& [pid, links] : allocator_links_)
    for (bpf_link* link : links) bpf_link__destroy(link);
  allocator_links_.clear();
  if (skeleton_) memory_syscalls__detach(skeleton_);
}

}  // namespace pagewaste::bpf
