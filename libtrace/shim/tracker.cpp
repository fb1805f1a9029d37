// Recording: everything a hook does for a traced call besides calling the
// real function. The order in each Record* is the same: capture what needs
// no lock (the stack), then take the writer lock, stamp the time and thread
// (so that times follow the trace's order), intern the stack, encode,
// release.
#include "tracker.h"

#include <malloc.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "clock.h"
#include "fast_unwind.h"
#include "raw_mmap.h"
#include "real_functions.h"
#include "trace_state.h"

namespace pagewaste::shim {

void Initialize();  // lifecycle.cpp

namespace {

// initial-exec: a dynamic TLS access could itself call malloc.
thread_local int t_depth __attribute__((tls_model("initial-exec"))) = 0;
thread_local uint32_t t_tid __attribute__((tls_model("initial-exec"))) = 0;
thread_local uint32_t t_tid_pid __attribute__((tls_model("initial-exec"))) = 0;

// The last stack this thread interned, with the node of each frame:
// consecutive stacks of a thread share their outer frames (its main loop, an
// interpreter's evaluation loop), and those need no look-up again. Ids stay
// valid in a forked child, whose trace starts with every node of its
// parent's.
struct LastStack {
  int depth = 0;
  uintptr_t ips[Stack::kMaxDepth];
  uint64_t ids[Stack::kMaxDepth];  // ids[i]: the stack ips[i..depth)
};
thread_local LastStack t_last_stack __attribute__((tls_model("initial-exec")));

uint64_t InternStack(TraceState& s, const Stack& stack) {
  LastStack& last = t_last_stack;
  // The outer frames both stacks share.
  int i = stack.depth - 1;
  int k = last.depth - 1;
  while (i >= 0 && k >= 0 && stack.ips[i] == last.ips[k]) {
    --i;
    --k;
  }
  if (i < 0 && k < 0) return stack.depth ? last.ids[0] : 0;  // the same stack
  uint64_t parent = k + 1 < last.depth ? last.ids[k + 1] : 0;
  int shared = stack.depth - 1 - i;
  // Keep the shared outer part where it lies in the new stack.
  if (shared && i != k) {
    memmove(&last.ips[i + 1], &last.ips[k + 1], shared * sizeof(uintptr_t));
    memmove(&last.ids[i + 1], &last.ids[k + 1], shared * sizeof(uint64_t));
  }
  memcpy(last.ips, stack.ips, (i + 1) * sizeof(uintptr_t));
  last.depth = stack.depth;
  uint64_t id = s.stacks.Intern(stack.ips, i + 1, &s.writer, parent, last.ids);
  return stack.depth ? id : 0;
}

// Runs f(state, tid) under the writer lock if the trace is still open:
// every record goes through here.
template <typename F>
void WhileTracing(F f) {
  TraceState& s = g_state;
  uint32_t tid = CurrentTid();
  bool held = s.lock.HeldBy(tid);  // by a ReleaseOrder of this thread
  if (!held) s.lock.Lock(tid);
  if (s.mode.load(std::memory_order_relaxed) == TraceMode::kTracing) f(s, tid);
  if (!held) s.lock.Unlock();
}

// The event's prefix, stamped under the lock (so that times follow the
// trace's order), with the stack interned.
EventPrefix Stamp(TraceState& s, uint32_t tid, const Stack* stack) {
  return {NowNs(), tid, stack ? InternStack(s, *stack) : 0};
}

// Runs encode(writer, event) under the lock, with the prefix stamped.
template <typename Event, typename Encode>
void Record(Event* e, const Stack* stack, Encode encode) {
  WhileTracing([&](TraceState& s, uint32_t tid) {
    e->prefix = Stamp(s, tid, stack);
    encode(&s.writer, *e);
  });
}

// Under sampling, the Free of a block is recorded when its Alloc was (the
// table of recorded blocks) or when the free itself entered the kernel.
// Caller holds the lock.
void NoteRecordedBlock(TraceState& s, uint64_t address) {
  if (s.sample_interval) s.sampled.Insert(address);
}
bool FreeIsRecorded(TraceState& s, uint64_t address, bool entered_kernel) {
  return !s.sample_interval || s.sampled.Remove(address) || entered_kernel;
}

}  // namespace

ReleaseOrder::ReleaseOrder(bool needed) {
  TraceState& s = g_state;
  if (!needed || s.mode.load(std::memory_order_relaxed) != TraceMode::kTracing) return;
  tid_ = CurrentTid();
  s.lock.Lock(tid_);
}

ReleaseOrder::~ReleaseOrder() {
  if (tid_) g_state.lock.Unlock();
}

Scope::Scope() : active_(false), inside_shim_(t_depth > 0) {
  if (inside_shim_) return;
  TraceMode mode = g_state.mode.load(std::memory_order_acquire);
  if (mode == TraceMode::kUninitialized) {
    ++t_depth;
    Initialize();
    --t_depth;
    mode = g_state.mode.load(std::memory_order_acquire);
  }
  if (mode != TraceMode::kTracing) return;
  active_ = true;
  ++t_depth;
}

Scope::~Scope() {
  if (active_) --t_depth;
}

uint32_t CurrentTid() {
  // Cached per thread; the pid check catches a forked child, whose one
  // thread inherits the forking thread's cache.
  uint32_t pid = g_state.pid;
  if (t_tid == 0 || t_tid_pid != pid) {
    t_tid = static_cast<uint32_t>(syscall(SYS_gettid));
    t_tid_pid = pid;
  }
  return t_tid;
}

uint64_t NowNs() {
  uint64_t now = CoarseMonotonicNs();
  return now > g_state.start_monotonic_ns ? now - g_state.start_monotonic_ns : 0;
}

void CountShimSyscalls(const SyscallCounts& counts) {
  for (int i = 0; i < format::kSyscallKinds; ++i)
    if (counts.count[i]) g_state.shim_syscalls[i].fetch_add(counts.count[i]);
}

void CountShimSyscall(format::SyscallKind kind) {
  g_state.shim_syscalls[static_cast<int>(kind)].fetch_add(1);
}

SyscallCounts ShimSyscalls() {
  SyscallCounts total = g_state.sink.syscalls();
  total.Add(format::SyscallKind::kMmap, g_state.live_mappings.mmaps());
  for (int i = 0; i < format::kSyscallKinds; ++i) total.count[i] += g_state.shim_syscalls[i].load();
  return total;
}

void MarkForObserver() {
  // munmap of length 0 fails with EINVAL and changes nothing; an observer
  // recognizes it by the length and the address. The marks bound the span
  // that both the observer's counts and the shim's own cover, and belong to
  // neither.
  RawMunmap(&g_state.observed, 0);
}

bool CalledByShim(const void* return_address) {
  auto ip = reinterpret_cast<uintptr_t>(return_address);
  return g_state.unwinder_code.Contains(ip) || g_state.own_code.Contains(ip);
}

void CaptureStack(Stack* stack) {
  const CodeRange& own = g_state.own_code;
  // The cached-rule walk first (fast_unwind.h); libunwind where it gives up.
  int n = FastBacktrace(stack->ips, Stack::kMaxDepth, own.start, own.end);
  if (n >= 0) {
    stack->depth = n;
    return;
  }
  void* raw[Stack::kMaxDepth + 8];
  n = unw_backtrace(raw, Stack::kMaxDepth + 8);
  // The shim's frames are dropped wherever they are: the hook and tracker
  // frames on top, and MainWrapper (our stand-in for main) near the bottom.
  int depth = 0;
  for (int i = 0; i < n && depth < Stack::kMaxDepth; ++i) {
    auto ip = reinterpret_cast<uintptr_t>(raw[i]);
    if (!own.Contains(ip)) stack->ips[depth++] = ip;
  }
  stack->depth = depth;
}

bool MeasureUsage(const void* addr, size_t length, UsageEstimate* usage) {
  uintptr_t start = reinterpret_cast<uintptr_t>(addr);
  uint64_t page = g_state.page_size;
  if (start % page || length == 0) return false;
  bool ok = true;
  *usage = EstimateUsage(static_cast<pid_t>(g_state.pid), start, length, page,
                         [&](uint64_t first, uint64_t count, unsigned char* out) {
                           ok = mincore(reinterpret_cast<void*>(start + first * page),
                                        count * page, out) == 0;
                           return ok;
                         });
  return ok;
}

ChunkInfo InspectChunk(const void* p) {
  ChunkInfo info;
  if (!p || !g_state.glibc_malloc) return info;
  // glibc: the word before the block is the chunk's size with flag bits;
  // bit 1 (IS_MMAPPED) marks a chunk with its own mapping. For such a chunk
  // the word before that holds the padding in front of the chunk inside the
  // mapping (non-zero after memalign), so the mapping is both together.
  // What malloc_usable_size says, without the call: the chunk's size less
  // its header (two words for a chunk of its own, one otherwise).
  const size_t* words = static_cast<const size_t*>(p);
  size_t size_field = words[-1];
  size_t chunk_size = size_field & ~size_t{7};
  info.known = true;
  if (!(size_field & 2)) {
    info.usable = chunk_size - sizeof(size_t);
    return info;
  }
  info.usable = chunk_size - 2 * sizeof(size_t);
  info.mmapped = true;
  info.mapped_bytes = (size_field & ~size_t{7}) + words[-2];
  return info;
}

namespace {

// What an allocator call cost in system calls: counted by dispatch, or,
// where dispatch could not count it, estimated from glibc's state: a chunk
// of its own is one mmap to get and one munmap to give back, a realloc from
// one such chunk to another one mremap, and a break that moved one brk.
void ChargeSyscalls(const AllocatorCall& call, const ChunkInfo& before,
                    const ChunkInfo& after, SyscallCounts* out, uint32_t* flags) {
  if (call.exact()) {
    *out = call.counts();
    return;
  }
  *flags |= format::kFlagSyscallsEstimated;
  if (after.mmapped && before.mmapped)
    out->Add(format::SyscallKind::kMremap);
  else if (after.mmapped)
    out->Add(format::SyscallKind::kMmap);
  else if (before.mmapped)
    out->Add(format::SyscallKind::kMunmap);
  if (call.break_moved()) out->Add(format::SyscallKind::kBrk);
}

}  // namespace

namespace {

// Per thread: bytes left before the next pick, and the generator that
// draws the gaps (xorshift64*, seeded alike on every thread, so that a
// sampled run of a deterministic program is reproducible).
thread_local int64_t t_sample_left __attribute__((tls_model("initial-exec"))) = -1;
thread_local uint64_t t_sample_rng __attribute__((tls_model("initial-exec"))) = 0;

// -ln(u) for u in (0, 1], well enough for drawing gaps: u = m 2^e with m in
// [1, 2), ln m = 2 atanh((m - 1) / (m + 1)) by its series.
double MinusLog(double u) {
  uint64_t bits;
  memcpy(&bits, &u, sizeof bits);
  int exponent = static_cast<int>((bits >> 52) & 0x7ff) - 1023;
  bits = (bits & ((uint64_t{1} << 52) - 1)) | (uint64_t{1023} << 52);
  double m;
  memcpy(&m, &bits, sizeof m);
  double t = (m - 1) / (m + 1);
  double t2 = t * t;
  double ln_m = 2 * t * (1 + t2 * (1.0 / 3 + t2 * (1.0 / 5 + t2 * (1.0 / 7 + t2 / 9))));
  return -(ln_m + exponent * 0.6931471805599453);
}

// The gap to the next picked byte: exponential with mean `interval`.
int64_t NextGap(uint64_t interval) {
  if (!t_sample_rng) t_sample_rng = 0x9E3779B97F4A7C15ull;
  t_sample_rng ^= t_sample_rng >> 12;
  t_sample_rng ^= t_sample_rng << 25;
  t_sample_rng ^= t_sample_rng >> 27;
  uint64_t r = t_sample_rng * 0x2545F4914F6CDD1Dull;
  double u = (static_cast<double>(r >> 11) + 1) / 9007199254740992.0;  // (0, 1]
  return static_cast<int64_t>(MinusLog(u) * static_cast<double>(interval)) + 1;
}

}  // namespace

SampleDecision DecideSample(uint64_t requested, const void* result, const AllocatorCall& call) {
  uint64_t interval = g_state.sample_interval;
  if (!interval) return SampleDecision::kRecord;
  if (t_sample_left < 0) t_sample_left = NextGap(interval);
  // A block with a picked byte is picked (whatever its size, once); the
  // count starts again from there, as tcmalloc's sampler does.
  bool picked = requested >= static_cast<uint64_t>(t_sample_left);
  if (picked)
    t_sample_left = NextGap(interval);
  else
    t_sample_left -= static_cast<int64_t>(requested);
  // A call that entered the kernel (or failed) stands for itself, picked
  // or not: its count is exact.
  bool entered_kernel = call.counts().Total() || call.moved_break() || InspectChunk(result).mmapped;
  if (!result || entered_kernel) return SampleDecision::kRecord;
  return picked ? SampleDecision::kRecordSampled : SampleDecision::kSkip;
}

// Where an allocator call left the program break: the brk heap's size.
void RecordAllocatorHeap(const AllocatorCall& call) {
  if (!call.moved_break() || !g_state.heap_start) return;
  BrkEvent e;
  e.kind = format::BrkKind::kBrk;
  e.old_break = g_state.heap_start;
  e.new_break = call.moved_break();
  e.flags = format::kFlagAllocatorHeap;
  Record(&e, nullptr, [](RecordWriter* w, const BrkEvent& ev) { w->Brk(ev); });
}

void RecordAlloc(AllocEvent* e, const Stack* stack, const AllocatorCall& call,
                 const ChunkInfo& replaced) {
  ChunkInfo chunk;
  if (e->address) {
    chunk = InspectChunk(reinterpret_cast<void*>(e->address));
    e->usable = g_state.glibc_malloc ? chunk.usable
                                     : malloc_usable_size(reinterpret_cast<void*>(e->address));
    e->mapped_bytes = chunk.mapped_bytes;
    if (chunk.mmapped) e->flags |= format::kFlagMmappedChunk;
  } else {
    e->flags |= format::kFlagFailed;
  }
  ChargeSyscalls(call, replaced, chunk, &e->syscalls, &e->flags);
  Record(e, stack, [](RecordWriter* w, const AllocEvent& ev) {
    NoteRecordedBlock(g_state, ev.address);
    w->Alloc(ev);
  });
  RecordAllocatorHeap(call);
}

void RecordFree(FreeEvent* e, const Stack* stack, const AllocatorCall* call) {
  if (call) {
    ChunkInfo freed{e->mapped_bytes, 0, (e->flags & format::kFlagMmappedChunk) != 0, true};
    ChargeSyscalls(*call, freed, ChunkInfo{}, &e->syscalls, &e->flags);
  }
  bool entered_kernel = (e->flags & format::kFlagMmappedChunk) || e->syscalls.Total();
  Record(e, stack, [entered_kernel](RecordWriter* w, const FreeEvent& ev) {
    if (FreeIsRecorded(g_state, ev.address, entered_kernel)) w->Free(ev);
  });
  if (call) RecordAllocatorHeap(*call);
}

void RecordPlainMalloc(const Stack& stack, uint64_t address, uint64_t requested,
                       const ChunkInfo& chunk) {
  WhileTracing([&](TraceState& s, uint32_t tid) {
    NoteRecordedBlock(s, address);
    s.writer.AllocSmall(Stamp(s, tid, &stack), address, requested, chunk.usable);
  });
}

void RecordPlainFree(uint64_t address) {
  WhileTracing([&](TraceState& s, uint32_t tid) {
    if (FreeIsRecorded(s, address, false)) s.writer.FreeSmall(Stamp(s, tid, nullptr), address);
  });
}

// The three keep the table of live mappings (measured at exit) up to date,
// under the writer lock like the records themselves.
void RecordMmap(MmapEvent* e, const Stack* stack) {
  Record(e, stack, [](RecordWriter* w, const MmapEvent& ev) {
    w->Mmap(ev);
    if (!(ev.flags & (format::kFlagFailed | format::kFlagFileBacked)) &&
        (ev.map_flags & MAP_PRIVATE))
      g_state.live_mappings.Add(ev.address, ev.length);
  });
}

void RecordMunmap(MunmapEvent* e, const Stack* stack) {
  Record(e, stack, [](RecordWriter* w, const MunmapEvent& ev) {
    w->Munmap(ev);
    if (!(ev.flags & format::kFlagFailed)) g_state.live_mappings.Remove(ev.address, ev.length);
  });
}

void RecordMremap(MremapEvent* e, const Stack* stack) {
  Record(e, stack, [](RecordWriter* w, const MremapEvent& ev) {
    w->Mremap(ev);
    if (!(ev.flags & format::kFlagFailed))
      g_state.live_mappings.Move(ev.old_address, ev.new_address, ev.new_length);
  });
}

void RecordLiveMappingsAtExit() {
  TraceState& s = g_state;
  uint32_t tid = CurrentTid();
  uint64_t now = NowNs();
  s.live_mappings.ForEach([&](uint64_t address, uint64_t length) {
    MunmapEvent e;
    e.prefix = {now, tid, 0};
    e.address = address;
    e.length = length;
    e.flags = format::kFlagAtExit;
    UsageEstimate usage;
    if (MeasureUsage(reinterpret_cast<const void*>(address), length, &usage))
      AttachUsage(usage, &e);
    s.writer.Munmap(e);
  });
}

void RecordBrk(BrkEvent* e, const Stack* stack) {
  Record(e, stack, [](RecordWriter* w, const BrkEvent& ev) { w->Brk(ev); });
}

void RecordMemoryCall(MemoryCallEvent* e, const Stack* stack) {
  Record(e, stack, [](RecordWriter* w, const MemoryCallEvent& ev) { w->MemoryCall(ev); });
}

void RecordModulesChanged() {
  WhileTracing([](TraceState& s, uint32_t) {
    WriteModuleMap(&s.writer, ++s.module_generation, s.exe_path);
  });
}

}  // namespace pagewaste::shim
