// See allocator_records.h.
#include "allocator_records.h"

#include "format/syscall_kind.h"

namespace pagewaste::bpf {
namespace {

// What glibc's two words before a block say of it, as the shim reads
// them (shim/tracker.cpp InspectChunk): its usable size, and for a chunk
// with a mapping of its own, the mapping's bytes.
struct Chunk {
  uint64_t usable = 0;
  uint64_t mapped_bytes = 0;
  bool mmapped = false;
};
Chunk ReadChunk(const uint64_t words[2]) {
  Chunk c;
  uint64_t size = words[1] & ~uint64_t{7};
  if (!(words[1] & 2)) {
    c.usable = size >= 8 ? size - 8 : 0;
    return c;
  }
  c.usable = size >= 16 ? size - 16 : 0;
  c.mmapped = true;
  c.mapped_bytes = size + words[0];
  return c;
}

// A block handed out, as the trace records it.
AllocEvent AllocationOf(uint32_t kind, uint64_t address, uint64_t requested, uint64_t alignment,
                        const uint64_t chunk_words[2], bool sampled) {
  AllocEvent alloc;
  alloc.kind = static_cast<format::AllocKind>(kind);
  alloc.address = address;
  alloc.requested = requested;
  alloc.alignment = alignment;
  Chunk chunk = ReadChunk(chunk_words);
  alloc.usable = chunk.usable >= requested ? chunk.usable : requested;
  alloc.mapped_bytes = chunk.mapped_bytes;
  if (chunk.mmapped) alloc.flags |= format::kFlagMmappedChunk;
  if (sampled) alloc.flags |= format::kFlagSampled;
  return alloc;
}

}  // namespace

void AllocatorRecords::AllocatorSyscall(pid_t tid, uint64_t time_ns, long nr,
                                        uint64_t kernel_ns) {
  allocator_syscalls_[tid].push_back({time_ns, SyscallKindOf(nr), kernel_ns});
}

// The system calls thread tid's allocator call made, taken for its event.
// Those made by time_ns, when the call returned: with a feed, a
// thread's next call's may be read before this one's record.
SyscallCounts AllocatorRecords::TakeAllocatorSyscalls(pid_t tid, uint64_t time_ns) {
  auto it = allocator_syscalls_.find(tid);
  if (it == allocator_syscalls_.end()) return {};
  SyscallCounts counts;
  std::deque<HeldSyscall>& made = it->second;
  while (!made.empty() && made.front().time_ns <= time_ns) {
    counts.Add(made.front().kind);
    counts.ns += made.front().kernel_ns;
    made.pop_front();
  }
  if (made.empty()) allocator_syscalls_.erase(it);
  return counts;
}

void AllocatorRecords::Allocation(const void* data, size_t size) {
  const auto* e = static_cast<const pw_alloc_event*>(data);
  size_t fixed = sizeof *e - sizeof e->frames;
  if (size < fixed) return;
  pid_t tid = static_cast<pid_t>(e->header.tid);
  ptrace::ProcessRecorder* recorder = recorder_of_(static_cast<pid_t>(e->header.tgid));
  if (!recorder) return;
  SyscallCounts syscalls = TakeAllocatorSyscalls(tid, e->header.time_ns);
  bool old_recorded = !sample_bytes_ || (e->flags & PW_OLD_RECORDED);
  if (e->kind == PW_REALLOC && e->old_address && old_recorded)
    Free(e->header, format::FreeKind::kRealloc, e->old_address, e->old_chunk);
  AllocEvent alloc = AllocationOf(e->kind, e->address, e->requested, e->alignment, e->chunk,
                                  e->flags & PW_SAMPLED);
  alloc.syscalls = syscalls;
  ptrace::RecordedStack stack;
  stack.ip = e->ip;
  stack.sp = e->sp;
  stack.bp = e->bp;
  stack.frames = reinterpret_cast<const ptrace::RecordedStack::Frame*>(e->frames);
  size_t frames = (size - fixed) / sizeof e->frames[0];
  stack.frame_count = static_cast<int>(frames < e->frame_count ? frames : e->frame_count);
  if (e->flags & PW_CHAIN_CUT) recorder->CountStackCut();
  recorder->RecordAllocation(tid, e->header.time_ns, alloc, stack);
}

void AllocatorRecords::Free(const pw_event_header& header, format::FreeKind kind,
                            uint64_t address, const uint64_t chunk_words[2]) {
  Free(static_cast<pid_t>(header.tgid), static_cast<pid_t>(header.tid), header.time_ns, kind,
       address, chunk_words);
}

void AllocatorRecords::Free(pid_t tgid, pid_t tid, uint64_t time_ns, format::FreeKind kind,
                            uint64_t address, const uint64_t chunk_words[2]) {
  ptrace::ProcessRecorder* recorder = recorder_of_(tgid);
  if (!recorder) return;
  FreeEvent e;
  e.kind = kind;
  e.address = address;
  Chunk chunk = ReadChunk(chunk_words);
  e.mapped_bytes = chunk.mapped_bytes;
  if (chunk.mmapped) e.flags |= format::kFlagMmappedChunk;
  if (kind == format::FreeKind::kFree) e.syscalls = TakeAllocatorSyscalls(tid, time_ns);
  recorder->RecordFree(tid, time_ns, e);
}

void AllocatorRecords::Feed(const inject::FeedRecord& r) {
  pid_t tid = static_cast<pid_t>(r.tid);
  pid_t tgid = static_cast<pid_t>(r.tgid);
  if (r.record == inject::kFeedFree)
    return Free(tgid, tid, r.time_ns, static_cast<format::FreeKind>(r.kind), r.address, r.chunk);
  ptrace::ProcessRecorder* recorder = recorder_of_(tgid);
  if (!recorder || r.record != inject::kFeedAlloc) return;
  AllocEvent alloc = AllocationOf(r.kind, r.address, r.requested, r.alignment, r.chunk,
                                  r.flags & inject::kFeedSampled);
  alloc.syscalls = TakeAllocatorSyscalls(tid, r.time_ns);
  if (r.flags & inject::kFeedStackCut) recorder->CountStackCut();
  int depth = r.depth < inject::kFeedMaxDepth ? static_cast<int>(r.depth) : inject::kFeedMaxDepth;
  recorder->RecordAllocation(tid, r.time_ns, alloc, r.ips, depth);
}

}  // namespace pagewaste::bpf
