// See process_recorder.h.
#include "process_recorder.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "format/clock.h"
#include "elf/elf_headers.h"
#include "proc_maps.h"

namespace pagewaste::ptrace {
namespace {

constexpr int kMaxDepth = 64;
static_assert(kMaxDepth <= format::kMaxStackDepth);

// ET_EXEC: a non-PIE executable.
bool IsFixedAddressExecutable(const std::string& path) {
  ElfHeaders elf;
  return ReadElfHeaders(path, &elf) && elf.file.e_type == ET_EXEC;
}

}  // namespace

ProcessImage ReadProcessImage(pid_t pid) {
  return {ExecutablePath(pid), ReadCmdline(pid), ReadModuleMap(pid)};
}

ProcessRecorder::ProcessRecorder(pid_t pid, pid_t ppid, const RecorderOptions& options,
                                 ProcessImage image)
    : pid_(pid),
      image_(std::move(image)),
      trace_(std::make_unique<producer::TraceFile>()),
      unwinder_(IsFixedAddressExecutable(image_.exe), IsGoProgram(image_.exe)) {
  std::string name = image_.exe.substr(image_.exe.rfind('/') + 1);
  ok_ = trace_->stacks().Init() &&
        trace_->Open(options.output_pattern.c_str(), name.c_str(), static_cast<uint32_t>(pid),
                     options.session_id, /*use_mapping=*/true);
  if (!ok_) return;
  start_ns_ = MonotonicNs();
  std::vector<const char*> argv_ptrs;
  for (const auto& a : image_.argv) argv_ptrs.push_back(a.c_str());
  HeaderInfo h;
  h.process.page_size = static_cast<uint32_t>(sysconf(_SC_PAGESIZE));
  h.process.pid = static_cast<uint32_t>(pid);
  h.process.ppid = static_cast<uint32_t>(ppid);
  h.process.session_id = options.session_id;
  h.process.start_monotonic_ns = start_ns_;
  h.process.backend = options.backend;
  if (options.attached) h.flags |= format::kHeaderAttached;
  h.process.sample_interval_bytes = options.sample_bytes;
  h.exe = image_.exe.c_str();
  h.argc = static_cast<int>(argv_ptrs.size());
  h.argv = argv_ptrs.data();
  ok_ = trace_->WriteHeader(h);
  if (!ok_) return;
  WriteModules();
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
  e.stack = trace_->stacks().Intern(ips, depth, &trace_->writer());
  if (e.nr == SYS_munmap) e.measured = MeasureUsage(e.args[0], e.args[1], &e.usage);
  e.start_ns = MonotonicNs();
  e.start_cpu_ns = ThreadCpuNs(tid);
  return e;
}

// The time a call took is the CPU time its thread ran between the stop at
// its entry and the stop at its exit: the call in the kernel, without the
// tracer's own work at either stop, which the wall clock between the two
// would count (ten times the call itself on the Zig page allocator).
uint64_t ProcessRecorder::ThreadCpuNs(pid_t tid) {
  auto it = schedstat_.find(tid);
  if (it == schedstat_.end()) {
    if (schedstat_.size() >= 256) {  // threads come and go: start again
      for (auto& [unused, fd] : schedstat_)
        if (fd >= 0) close(fd);
      schedstat_.clear();
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/schedstat", pid_, tid);
    it = schedstat_.emplace(tid, open(path, O_RDONLY | O_CLOEXEC)).first;
  }
  char text[96];
  ssize_t n = it->second < 0 ? -1 : pread(it->second, text, sizeof text - 1, 0);
  if (n <= 0) {
    // A thread gone (its id may come back as another's): look again next time.
    if (it->second >= 0) close(it->second);
    schedstat_.erase(it);
    return 0;
  }
  text[n] = '\0';
  return strtoull(text, nullptr, 10);
}

void ProcessRecorder::Exit(pid_t tid, const Entry& entry, int64_t result) {
  uint64_t end = MonotonicNs();
  producer::MemorySyscall call;
  call.nr = entry.nr;
  memcpy(call.args, entry.args, sizeof call.args);
  call.result = result;
  uint64_t end_cpu = entry.start_cpu_ns ? ThreadCpuNs(tid) : 0;
  call.ns = end_cpu >= entry.start_cpu_ns && end_cpu ? end_cpu - entry.start_cpu_ns
                                                     : end - entry.start_ns;
  call.usage = entry.measured ? &entry.usage : nullptr;
  Write(tid, end, entry.stack, call);
}

void ProcessRecorder::RecordCall(pid_t tid, uint64_t time_ns, producer::MemorySyscall call,
                                 const RecordedStack& stack) {
  if (!Known(stack.ip)) RefreshModules();
  uintptr_t ips[kMaxDepth];
  int depth =
      unwinder_.UnwindRecorded(stack, ips, kMaxDepth, [this](uint64_t ip) { return Known(ip); });
  Write(tid, time_ns, trace_->stacks().Intern(ips, depth, &trace_->writer()), call);
}

void ProcessRecorder::RecordAllocation(pid_t tid, uint64_t time_ns, AllocEvent e,
                                       const RecordedStack& stack) {
  if (!Known(stack.ip)) RefreshModules();
  uintptr_t ips[kMaxDepth];
  int depth =
      unwinder_.UnwindRecorded(stack, ips, kMaxDepth, [this](uint64_t ip) { return Known(ip); });
  uint64_t id = trace_->stacks().Intern(ips, depth, &trace_->writer());
  e.prefix = {time_ns > start_ns_ ? time_ns - start_ns_ : 0, static_cast<uint32_t>(tid), id};
  trace_->writer().Alloc(e);
}

void ProcessRecorder::RecordAllocation(pid_t tid, uint64_t time_ns, AllocEvent e,
                                       const uint64_t* ips, int depth) {
  if (depth > 0 && !Known(ips[0])) RefreshModules();
  uintptr_t frames[kMaxDepth];
  int n = depth < kMaxDepth ? depth : kMaxDepth;
  for (int i = 0; i < n; ++i) frames[i] = static_cast<uintptr_t>(ips[i]);
  uint64_t id = trace_->stacks().Intern(frames, n, &trace_->writer());
  e.prefix = {time_ns > start_ns_ ? time_ns - start_ns_ : 0, static_cast<uint32_t>(tid), id};
  trace_->writer().Alloc(e);
}

void ProcessRecorder::RecordFree(pid_t tid, uint64_t time_ns, FreeEvent e) {
  e.prefix = {time_ns > start_ns_ ? time_ns - start_ns_ : 0, static_cast<uint32_t>(tid), 0};
  trace_->writer().Free(e);
}

void ProcessRecorder::Write(pid_t tid, uint64_t time_ns, uint64_t stack,
                            producer::MemorySyscall call) {
  if (call.nr == SYS_brk) {
    call.old_break = break_ ? break_ : static_cast<uint64_t>(call.result);
    break_ = static_cast<uint64_t>(call.result);
  }
  uint64_t at = time_ns > start_ns_ ? time_ns - start_ns_ : 0;
  trace_->Record({at, static_cast<uint32_t>(tid), stack}, call);
  bool failed = call.result < 0 && call.result > -4096;
  if (call.nr == SYS_mmap && !failed && (call.args[2] & PROT_EXEC)) RefreshModules();
}

void ProcessRecorder::MeasureLiveMappings(pid_t tid) {
  trace_->RecordLiveMappingsAtExit(
      {MonotonicNs() - start_ns_, static_cast<uint32_t>(tid), 0},
      [this](uint64_t address, uint64_t length, UsageEstimate* usage) {
        return MeasureUsage(address, length, usage);
      });
}

void ProcessRecorder::RecordLiveMappingsUnmeasured(uint64_t time_ns) {
  uint64_t at = time_ns > start_ns_ ? time_ns - start_ns_ : 0;
  trace_->RecordLiveMappingsAtExit({at, static_cast<uint32_t>(pid_), 0},
                                   [](uint64_t, uint64_t, UsageEstimate*) { return false; });
}

void ProcessRecorder::RecordLost(uint64_t events) {
  if (ok_ && !finished_ && events) trace_->writer().Lost(events);
}

void ProcessRecorder::Finish(format::EndReason reason, int64_t status) {
  if (!ok_ || finished_) return;
  finished_ = true;
  if (stacks_cut_) trace_->writer().StacksCut(stacks_cut_);
  trace_->FinishData();
  trace_->writer().SetLifetime(start_ns_, MonotonicNs());
  trace_->End(reason, status, SyscallCounts());
}

ProcessRecorder::~ProcessRecorder() {
  for (auto& [unused, fd] : schedstat_)
    if (fd >= 0) close(fd);
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

bool ProcessRecorder::Known(uint64_t ip) const {
  for (const ModuleInfo& m : image_.modules)
    for (const ModuleSegment& s : m.segments)
      if (ip >= s.start && ip < s.start + s.length) return true;
  return false;
}

// A process gone keeps the map it had: its last events still need it.
void ProcessRecorder::RefreshModules() {
  std::vector<ModuleInfo> modules = ReadModuleMap(pid_);
  if (modules.empty()) return;
  image_.modules = std::move(modules);
  WriteModules();
}

void ProcessRecorder::WriteModules() {
  RecordWriter& writer = trace_->writer();
  writer.ModuleMap(++generation_);
  for (const ModuleInfo& m : image_.modules) {
    // Read once per file: the map is refreshed at every executable mapping.
    auto id = build_ids_.find(m.path);
    if (id == build_ids_.end()) id = build_ids_.emplace(m.path, ReadBuildId(m.path)).first;
    writer.Module(m.load_bias, m.segments.data(), static_cast<int>(m.segments.size()),
                   m.path.c_str(), id->second.c_str());
  }
  unwinder_.Flush();
}

}  // namespace pagewaste::ptrace
