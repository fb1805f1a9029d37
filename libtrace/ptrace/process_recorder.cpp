// See process_recorder.h.
#include "process_recorder.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include "clock.h"
#include "elf_headers.h"
#include "proc_maps.h"
#include "syscall_kind.h"

namespace pagewaste::ptrace {
namespace {

using format::SyscallKind;

constexpr uint32_t kFailed = format::kFlagFailed;
constexpr uint32_t kFileBacked = format::kFlagFileBacked;

constexpr size_t kChunk = 256 << 10;
constexpr int kMaxDepth = 64;
static_assert(kMaxDepth <= format::kMaxStackDepth);

uint64_t RealtimeNs() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// ET_EXEC: a non-PIE executable.
bool IsFixedAddressExecutable(const std::string& path) {
  ElfHeaders elf;
  return ReadElfHeaders(path, &elf) && elf.file.e_type == ET_EXEC;
}

}  // namespace

ProcessRecorder::ProcessRecorder(pid_t pid, pid_t ppid, const RecorderOptions& options)
    : pid_(pid),
      buffer_(kChunk),
      writer_(buffer_.data(), buffer_.size(), &sink_),
      unwinder_(IsFixedAddressExecutable("/proc/" + std::to_string(pid) + "/exe")) {
  std::string exe = ExecutablePath(pid);
  std::string name = exe.substr(exe.rfind('/') + 1);
  ok_ = stacks_.Init() &&
        sink_.Open(options.output_pattern.c_str(), name.c_str(), static_cast<uint32_t>(pid),
                   options.session_id, /*use_mapping=*/true);
  if (!ok_) return;
  start_ns_ = MonotonicNs();
  std::vector<std::string> argv = ReadCmdline(pid);
  std::vector<const char*> argv_ptrs;
  for (const auto& a : argv) argv_ptrs.push_back(a.c_str());
  HeaderInfo h;
  h.process.page_size = static_cast<uint32_t>(sysconf(_SC_PAGESIZE));
  h.process.pid = static_cast<uint32_t>(pid);
  h.process.ppid = static_cast<uint32_t>(ppid);
  h.process.session_id = options.session_id;
  h.process.start_realtime_ns = RealtimeNs();
  h.process.start_monotonic_ns = start_ns_;
  h.process.backend = format::Backend::kPtrace;
  h.exe = exe.c_str();
  h.argc = static_cast<int>(argv_ptrs.size());
  h.argv = argv_ptrs.data();
  std::vector<uint8_t> header(64 << 10);
  size_t n = EncodeHeader(h, header.data(), header.size());
  sink_.WriteRaw(header.data(), n);
  RefreshModules();
}

ProcessRecorder::Entry ProcessRecorder::Enter(pid_t tid, const user_regs_struct& regs) {
  Entry e;
  e.nr = static_cast<long>(regs.orig_rax);
  uint64_t args[6] = {regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9};
  memcpy(e.args, args, sizeof args);
  if (!Known(regs.rip)) RefreshModules();
  uintptr_t ips[kMaxDepth];
  int depth =
      unwinder_.Unwind(tid, regs, ips, kMaxDepth, [this](uint64_t ip) { return Known(ip); });
  e.stack = stacks_.Intern(ips, depth, &writer_);
  if (e.nr == SYS_munmap) e.measured = MeasureUsage(e.args[0], e.args[1], &e.usage);
  e.start_ns = MonotonicNs();
  return e;
}

void ProcessRecorder::Exit(pid_t tid, const Entry& entry, int64_t result) {
  uint64_t end = MonotonicNs();
  EventPrefix prefix{end - start_ns_, static_cast<uint32_t>(tid), entry.stack};
  SyscallCounts syscalls;
  syscalls.Add(SyscallKindOf(entry.nr));
  syscalls.ns = end - entry.start_ns;
  bool failed = result < 0 && result > -4096;
  const uint64_t* a = entry.args;
  switch (entry.nr) {
    case SYS_mmap: {
      MmapEvent e;
      e.prefix = prefix;
      e.address = failed ? 0 : static_cast<uint64_t>(result);
      e.length = a[1];
      e.prot = static_cast<uint32_t>(a[2]);
      e.map_flags = static_cast<uint32_t>(a[3]);
      e.fd = static_cast<int32_t>(a[4]);
      e.offset = a[5];
      e.flags = (failed ? kFailed : 0) | ((e.map_flags & MAP_ANONYMOUS) ? 0 : kFileBacked);
      e.syscalls = syscalls;
      writer_.Mmap(e);
      if (!failed && (e.map_flags & MAP_ANONYMOUS) && (e.map_flags & MAP_PRIVATE))
        live_[e.address] = e.length;
      if (!failed && (e.prot & 4 /* PROT_EXEC */)) RefreshModules();
      break;
    }
    case SYS_munmap: {
      MunmapEvent e;
      e.prefix = prefix;
      e.address = a[0];
      e.length = a[1];
      e.flags = result != 0 ? kFailed : 0;
      if (entry.measured && result == 0) AttachUsage(entry.usage, &e);
      e.syscalls = syscalls;
      writer_.Munmap(e);
      if (result == 0) Forget(a[0], a[1]);
      break;
    }
    case SYS_mremap: {
      MremapEvent e;
      e.prefix = prefix;
      e.old_address = a[0];
      e.old_length = a[1];
      e.new_length = a[2];
      e.mremap_flags = static_cast<uint32_t>(a[3]);
      e.new_address = failed ? 0 : static_cast<uint64_t>(result);
      e.flags = failed ? kFailed : 0;
      e.syscalls = syscalls;
      writer_.Mremap(e);
      if (!failed && live_.erase(a[0])) live_[e.new_address] = e.new_length;
      break;
    }
    case SYS_brk: {
      BrkEvent e;
      e.prefix = prefix;
      e.kind = format::BrkKind::kBrk;
      e.old_break = break_ ? break_ : static_cast<uint64_t>(result);
      e.new_break = static_cast<uint64_t>(result);
      e.argument = static_cast<int64_t>(a[0]);
      // brk returns the current break; asking for another one and getting
      // the old one back is a failure.
      e.flags = a[0] && static_cast<uint64_t>(result) != a[0] ? kFailed : 0;
      e.syscalls = syscalls;
      writer_.Brk(e);
      break_ = static_cast<uint64_t>(result);
      break;
    }
    default: {
      MemoryCallEvent e;
      e.prefix = prefix;
      e.kind = SyscallKindOf(entry.nr);
      e.address = a[0];
      e.length = a[1];
      e.argument = a[2];
      e.flags = result != 0 ? kFailed : 0;
      e.syscalls = syscalls;
      writer_.MemoryCall(e);
    }
  }
}

void ProcessRecorder::MeasureLiveMappings(pid_t tid) {
  for (const auto& [address, length] : live_) {
    MunmapEvent e;
    e.prefix = {MonotonicNs() - start_ns_, static_cast<uint32_t>(tid), 0};
    e.address = address;
    e.length = length;
    e.flags = format::kFlagAtExit;
    UsageEstimate usage;
    if (MeasureUsage(address, length, &usage)) AttachUsage(usage, &e);
    writer_.Munmap(e);
  }
  live_.clear();
}

void ProcessRecorder::Finish(format::EndReason reason, int64_t status) {
  if (!ok_ || finished_) return;
  finished_ = true;
  writer_.Flush();
  sink_.StopMapping();
  writer_.End(reason, status, SyscallCounts());
  sink_.Close();
}

ProcessRecorder::~ProcessRecorder() {
  Finish(format::EndReason::kDetach, format::kUnknownStatus);
  if (pagemap_ >= 0) close(pagemap_);
}

// Residency from /proc/PID/pagemap: a page is counted when it is present
// or swapped out (it was made resident once).
bool ProcessRecorder::MeasureUsage(uint64_t start, uint64_t length, UsageEstimate* usage) {
  uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  if (start % page || length == 0) return false;
  if (pagemap_ < 0)
    pagemap_ = open(("/proc/" + std::to_string(pid_) + "/pagemap").c_str(), O_RDONLY | O_CLOEXEC);
  if (pagemap_ < 0) return false;
  bool ok = true;
  *usage = EstimateUsage(
      pid_, start, length, page, [&](uint64_t first, uint64_t count, unsigned char* out) {
        std::vector<uint64_t> entries(count);
        off_t at = static_cast<off_t>((start / page + first) * 8);
        ok = pread(pagemap_, entries.data(), count * 8, at) == static_cast<ssize_t>(count * 8);
        for (uint64_t i = 0; ok && i < count; ++i) out[i] = (entries[i] >> 62) & 3 ? 1 : 0;
        return ok;
      });
  return ok;
}

// Drops the live mappings inside an unmapped range. (A partial unmap of
// a mapping keeps it, whole, as live: an estimate at exit, not more.)
void ProcessRecorder::Forget(uint64_t start, uint64_t length) {
  for (auto it = live_.lower_bound(start); it != live_.end() && it->first < start + length;)
    it = it->first + it->second <= start + length ? live_.erase(it) : std::next(it);
}

bool ProcessRecorder::Known(uint64_t ip) const {
  for (const ModuleInfo& m : modules_)
    for (const ModuleSegment& s : m.segments)
      if (ip >= s.start && ip < s.start + s.length) return true;
  return false;
}

void ProcessRecorder::RefreshModules() {
  modules_ = ReadModuleMap(pid_);
  writer_.ModuleMap(++generation_);
  for (const ModuleInfo& m : modules_) {
    // Read once per file: the map is refreshed at every executable mapping.
    auto id = build_ids_.find(m.path);
    if (id == build_ids_.end()) id = build_ids_.emplace(m.path, ReadBuildId(m.path)).first;
    writer_.Module(m.load_bias, m.segments.data(), static_cast<int>(m.segments.size()),
                   m.path.c_str(), id->second.c_str());
  }
  unwinder_.Flush();
}

}  // namespace pagewaste::ptrace
