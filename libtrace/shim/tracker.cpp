// Recording: the order in each entry is the same: capture what needs no
// lock (the stack, the block's header, a mapping's use), then, under the
// trace's writer lock, stamp the time and thread (so that times follow the
// trace's order), intern the stack, encode, release.
#include "tracker.h"

#include <malloc.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include <cerrno>
#include <cstring>
#include <initializer_list>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "fast_unwind.h"
#include "lifecycle.h"
#include "real_functions.h"
#include "format/sample_gap.h"
#include "sampled_blocks.h"
#include "trace.h"

namespace pagewaste::shim {

namespace {

using format::AllocKind;
using format::SyscallKind;

// Set once before tracing begins (SetUpTracker, StartSampling).
constinit TrackerSetup g_setup;
// pagewaste run --sample: bytes per sample on average (0: record all), and
// the live blocks whose Alloc was recorded (under the writer lock).
uint64_t g_sample_interval = 0;
constinit SampledBlocks g_sampled;

// initial-exec: a dynamic TLS access could itself call malloc.
thread_local int t_depth __attribute__((tls_model("initial-exec"))) = 0;

// ---- Stacks ---------------------------------------------------------------------

void CaptureStack(Stack* stack) {
  const CodeRange& own = g_setup.own_code;
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

uint64_t InternStack(RecordWriter& writer, const Stack& stack) {
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
  uint64_t id = g_trace.InternStack(&writer, stack.ips, i + 1, parent, last.ids);
  return stack.depth ? id : 0;
}

// ---- Recording --------------------------------------------------------------------

// The event's prefix, stamped once it has its seq (so that times follow
// the trace's order), with the stack interned.
EventPrefix Stamp(RecordWriter& writer, uint32_t tid, uint64_t seq, const Stack* stack) {
  return {g_trace.NowNs(), tid, stack ? InternStack(writer, *stack) : 0, seq};
}

// Runs encode(writer, event) with the prefix stamped; `held`: the seq a
// ReleaseOrder took for it.
template <typename Event, typename Encode>
void Record(Event* e, const Stack* stack, Encode encode, uint64_t held = kNoSeq) {
  g_trace.Record(
      [&](RecordWriter& writer, uint32_t tid, uint64_t seq) {
        e->prefix = Stamp(writer, tid, seq, stack);
        encode(&writer, *e);
      },
      held);
}

// A memory system call of the program's as the kernel saw it: its number,
// arguments, result (-errno on failure, errno read here) and time.
producer::MemorySyscall KernelCall(long nr, std::initializer_list<uint64_t> args, bool failed,
                                   uint64_t value, uint64_t ns) {
  producer::MemorySyscall call;
  call.nr = nr;
  int i = 0;
  for (uint64_t a : args) call.args[i++] = a;
  call.result =
      failed ? -static_cast<int64_t>(errno ? errno : EINVAL) : static_cast<int64_t>(value);
  call.ns = ns;
  return call;
}

// Records it under `stack`, or one captured here; errno is left as the
// call left it.
void RecordSyscall(const producer::MemorySyscall& call, const Stack* stack = nullptr,
                   uint64_t held = kNoSeq) {
  int saved_errno = errno;
  Stack here;
  if (!stack) {
    CaptureStack(&here);
    stack = &here;
  }
  g_trace.Record(
      [&](RecordWriter& writer, uint32_t tid, uint64_t seq) {
        g_trace.RecordMemorySyscall(&writer, Stamp(writer, tid, seq, stack), call);
      },
      held);
  errno = saved_errno;
}

// ---- Blocks: glibc's headers, sampling, what a call cost ----------------------------

ChunkInfo InspectChunk(const void* p) {
  ChunkInfo info;
  if (!p || !g_setup.glibc_malloc) return info;
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

// Per thread: bytes left before the next pick, and the generator that
// draws the gaps (xorshift64*, seeded alike on every thread, so that a
// sampled run of a deterministic program is reproducible).
thread_local int64_t t_sample_left __attribute__((tls_model("initial-exec"))) = -1;
thread_local uint64_t t_sample_rng __attribute__((tls_model("initial-exec"))) = 0;

// The gap to the next picked byte: exponential with mean `interval`.
int64_t NextGap(uint64_t interval) { return NextSampleGap(&t_sample_rng, interval); }

// What to do with an allocator call's new block: kRecordSampled (picked:
// each requested byte is picked with probability 1 / interval), kRecord
// (not sampling, or the call entered the kernel or failed: such calls are
// always recorded, for themselves), or kSkip. Decided before the stack is
// captured, which is most of the cost.
enum class SampleDecision { kRecord, kRecordSampled, kSkip };

SampleDecision DecideSample(uint64_t requested, const void* result, const AllocatorCall& call) {
  uint64_t interval = g_sample_interval;
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
  bool entered_kernel = call.counts().Total() || call.new_break() || InspectChunk(result).mmapped;
  if (!result || entered_kernel) return SampleDecision::kRecord;
  return picked ? SampleDecision::kRecordSampled : SampleDecision::kSkip;
}

// Under sampling, the Free of a block is recorded when its Alloc was (the
// table of recorded blocks, which threads share) or when the free itself
// entered the kernel.
constinit OwnerLock g_sampled_lock;
void NoteRecordedBlock(uint64_t address) {
  if (!g_sample_interval) return;
  g_sampled_lock.Lock(g_trace.CurrentTid());
  g_sampled.Insert(address);
  g_sampled_lock.Unlock();
}
bool FreeIsRecorded(uint64_t address, bool entered_kernel) {
  if (!g_sample_interval) return true;
  if (!g_sampled.MaybeHolds(address)) return entered_kernel;  // never picked: no lock
  g_sampled_lock.Lock(g_trace.CurrentTid());
  bool recorded = g_sampled.Remove(address);
  g_sampled_lock.Unlock();
  return recorded || entered_kernel;
}

// What an allocator call cost in system calls: counted by dispatch, or,
// where dispatch could not count it, estimated from glibc's state: a chunk
// of its own is one mmap to get and one munmap to give back, a realloc from
// one such chunk to another one mremap, and a break that moved one brk.
void ChargeSyscalls(const AllocatorCall& call, const ChunkInfo& before, const ChunkInfo& after,
                    SyscallCounts* out, uint32_t* flags) {
  if (call.exact()) {
    *out = call.counts();
    return;
  }
  *flags |= format::kFlagSyscallsEstimated;
  if (after.mmapped && before.mmapped)
    out->Add(SyscallKind::kMremap);
  else if (after.mmapped)
    out->Add(SyscallKind::kMmap);
  else if (before.mmapped)
    out->Add(SyscallKind::kMunmap);
  if (call.break_seen_moving()) out->Add(SyscallKind::kBrk);
}

// Where an allocator call left the program break: the brk heap's size.
void RecordAllocatorHeap(const AllocatorCall& call) {
  if (!call.new_break() || !g_setup.heap_start) return;
  BrkEvent e;
  e.kind = format::BrkKind::kBrk;
  e.old_break = g_setup.heap_start;
  e.new_break = call.new_break();
  e.flags = format::kFlagAllocatorHeap;
  Record(&e, nullptr, [](RecordWriter* w, const BrkEvent& ev) { w->Brk(ev); });
}

// A new block; `replaced` is the block a realloc gave up.
void RecordAlloc(AllocEvent* e, const Stack* stack, const AllocatorCall& call,
                 const ChunkInfo& replaced = {}) {
  ChunkInfo chunk;
  if (e->address) {
    chunk = InspectChunk(reinterpret_cast<void*>(e->address));
    e->usable = g_setup.glibc_malloc ? chunk.usable
                                     : malloc_usable_size(reinterpret_cast<void*>(e->address));
    e->mapped_bytes = chunk.mapped_bytes;
    if (chunk.mmapped) e->flags |= format::kFlagMmappedChunk;
  } else {
    e->flags |= format::kFlagFailed;
  }
  ChargeSyscalls(call, replaced, chunk, &e->syscalls, &e->flags);
  Record(e, stack, [](RecordWriter* w, const AllocEvent& ev) {
    NoteRecordedBlock(ev.address);
    w->Alloc(ev);
  });
  RecordAllocatorHeap(call);
}

// A block given back; `call` is null when the call's system calls went
// with the Alloc of a realloc; `held`, the seq taken before the real call.
void RecordFree(format::FreeKind kind, void* p, const ChunkInfo& chunk, const Stack* stack,
                const AllocatorCall* call, uint64_t held) {
  FreeEvent e;
  e.kind = kind;
  e.address = reinterpret_cast<uintptr_t>(p);
  e.mapped_bytes = chunk.mapped_bytes;
  if (chunk.mmapped) e.flags |= format::kFlagMmappedChunk;
  if (call) {
    ChunkInfo freed{chunk.mapped_bytes, 0, chunk.mmapped, true};
    ChargeSyscalls(*call, freed, ChunkInfo{}, &e.syscalls, &e.flags);
  }
  bool entered_kernel = chunk.mmapped || e.syscalls.Total();
  Record(
      &e, stack,
      [entered_kernel](RecordWriter* w, const FreeEvent& ev) {
        if (FreeIsRecorded(ev.address, entered_kernel)) w->Free(ev);
      },
      held);
  if (call) RecordAllocatorHeap(*call);
}

}  // namespace

// ---- Scope, setup, order --------------------------------------------------------

Scope::Scope() : active_(false), inside_shim_(t_depth > 0) {
  if (inside_shim_) return;
  TraceMode mode = g_trace.mode();
  if (mode == TraceMode::kUninitialized) {
    ++t_depth;
    Initialize();
    --t_depth;
    mode = g_trace.mode();
  }
  if (mode != TraceMode::kTracing) return;
  active_ = true;
  ++t_depth;
}

Scope::~Scope() {
  if (active_) --t_depth;
}

bool Scope::ProgramSyscall(const void* return_address, SyscallKind kind) const {
  auto ip = reinterpret_cast<uintptr_t>(return_address);
  bool shims = inside_shim_ || g_setup.unwinder_code.Contains(ip) || g_setup.own_code.Contains(ip);
  // Made inside an allocator call that is being counted (an allocator such
  // as jemalloc calls mmap through the PLT), the system call is trapped and
  // counted there already: on the allocation's event, or as the shim's own
  // for the shim's allocations.
  if (shims && !CountingOnThisThread()) g_trace.CountOwn(kind);
  return active_ && !shims;
}

void SetUpTracker(const TrackerSetup& setup) { g_setup = setup; }

bool StartSampling(uint64_t interval_bytes) {
  if (interval_bytes <= 1 || !g_sampled.Init()) return false;
  g_sample_interval = interval_bytes;
  return true;
}

void HoldTrackerTables() {
  if (g_sample_interval) g_sampled_lock.Lock(g_trace.CurrentTid());
}

void ReleaseTrackerTables() {
  if (g_sample_interval) g_sampled_lock.Unlock();
}

void CountShimsOwn(const AllocatorCall& call) { g_trace.CountOwn(call.counts()); }

void ReleaseOrder::Hold() { seq_ = g_trace.HoldSeq(); }

ReleaseOrder::~ReleaseOrder() {
  if (seq_ != kNoSeq) g_trace.ReleaseSeq();
}

// ---- The malloc family --------------------------------------------------------------

void OnAlloc(AllocKind kind, void* result, size_t requested, size_t alignment,
             const AllocatorCall& call) {
  SampleDecision sample = DecideSample(requested, result, call);
  if (sample == SampleDecision::kSkip) return;
  Stack stack;
  CaptureStack(&stack);
  auto address = reinterpret_cast<uintptr_t>(result);
  // The common case, written as the compact record without building an
  // event: a malloc whose call made no system call (so the break did not
  // move either) and got a block on shared heap pages.
  if (kind == AllocKind::kMalloc && sample == SampleDecision::kRecord && result &&
      call.exact_and_none()) {
    ChunkInfo chunk = InspectChunk(result);
    if (chunk.known && !chunk.mmapped) {
      g_trace.Record([&](RecordWriter& writer, uint32_t tid, uint64_t seq) {
        NoteRecordedBlock(address);
        writer.AllocSmall(Stamp(writer, tid, seq, &stack), address, requested, chunk.usable);
      });
      return;
    }
  }
  AllocEvent e;
  if (sample == SampleDecision::kRecordSampled) e.flags = format::kFlagSampled;
  e.kind = kind;
  e.address = address;
  e.requested = requested;
  e.alignment = alignment;
  RecordAlloc(&e, &stack, call);
}

FreeCall::FreeCall(void* p) : p_(p), chunk_(InspectChunk(p)) { order_.Hold(); }

void FreeCall::Done(const AllocatorCall& call) {
  auto address = reinterpret_cast<uintptr_t>(p_);
  if (!chunk_.mmapped && call.exact_and_none()) {
    // A free of a block on shared heap pages that made no system call: the
    // compact record, without a stack.
    g_trace.Record(
        [&](RecordWriter& writer, uint32_t tid, uint64_t seq) {
          if (FreeIsRecorded(address, false))
            writer.FreeSmall(Stamp(writer, tid, seq, nullptr), address);
        },
        order_.seq());
    return;
  }
  // Frees carry a stack only when they cost the kernel something (a mapping
  // returned, a heap trimmed): that is where a page allocator's cost shows,
  // and it keeps the common free cheap.
  bool costly = chunk_.mmapped || call.counts().Total() || call.break_seen_moving();
  Stack stack;
  if (costly) CaptureStack(&stack);
  RecordFree(format::FreeKind::kFree, p_, chunk_, costly ? &stack : nullptr, &call, order_.seq());
}

ReallocCall::ReallocCall(AllocKind kind, void* p, size_t size)
    : kind_(kind), p_(p), size_(size), old_(InspectChunk(p)) {
  CaptureStack(&stack_);
  if (p) order_.Hold();
}

void ReallocCall::Done(void* result, const AllocatorCall& call) {
  bool allocates = result || size_ != 0;
  if (p_ && (result || size_ == 0))
    RecordFree(format::FreeKind::kRealloc, p_, old_, &stack_, allocates ? nullptr : &call,
               order_.seq());
  SampleDecision sample = allocates ? DecideSample(size_, result, call) : SampleDecision::kSkip;
  if (sample != SampleDecision::kSkip) {
    AllocEvent e;
    e.kind = kind_;
    e.address = reinterpret_cast<uintptr_t>(result);
    e.requested = size_;
    if (sample == SampleDecision::kRecordSampled) e.flags = format::kFlagSampled;
    RecordAlloc(&e, &stack_, call, old_);
  }
}

// ---- The program's own memory system calls ------------------------------------------

void OnMmap(void* addr, size_t length, int prot, int flags, int fd, off_t offset, void* result,
            uint64_t ns) {
  RecordSyscall(KernelCall(
      SYS_mmap,
      {reinterpret_cast<uintptr_t>(addr), length, static_cast<uint64_t>(prot),
       static_cast<uint64_t>(flags), static_cast<uint64_t>(fd), static_cast<uint64_t>(offset)},
      result == MAP_FAILED, reinterpret_cast<uintptr_t>(result), ns));
}

MunmapCall::MunmapCall(void* addr, size_t length) : addr_(addr), length_(length) {
  measured_ = MeasureUsage(reinterpret_cast<uintptr_t>(addr), length, &usage_);
  CaptureStack(&stack_);
  order_.Hold();
}

void MunmapCall::Done(int rc, uint64_t ns) {
  producer::MemorySyscall call =
      KernelCall(SYS_munmap, {reinterpret_cast<uintptr_t>(addr_), length_}, rc != 0, 0, ns);
  call.usage = measured_ ? &usage_ : nullptr;
  RecordSyscall(call, &stack_, order_.seq());
}

MremapCall::MremapCall() {
  CaptureStack(&stack_);
  order_.Hold();
}

void MremapCall::Done(void* old_address, size_t old_size, size_t new_size, int flags,
                      void* new_address, void* result, uint64_t ns) {
  RecordSyscall(KernelCall(SYS_mremap,
                           {reinterpret_cast<uintptr_t>(old_address), old_size, new_size,
                            static_cast<uint64_t>(flags), reinterpret_cast<uintptr_t>(new_address)},
                           result == MAP_FAILED, reinterpret_cast<uintptr_t>(result), ns),
                &stack_, order_.seq());
}

void OnBrk(void* addr, uintptr_t old_break, uint64_t ns) {
  // As the kernel's brk: the break after the call is its result (the old
  // one when the call failed, which is how glibc's brk tells a failure).
  producer::MemorySyscall call =
      KernelCall(SYS_brk, {reinterpret_cast<uintptr_t>(addr)}, false, CurrentBreak(), ns);
  call.old_break = old_break;
  RecordSyscall(call);
}

void OnSbrk(intptr_t increment, void* result, uint64_t ns) {
  // sbrk is the C library's, not a system call: a record of its own kind.
  int saved_errno = errno;
  Stack stack;
  CaptureStack(&stack);
  BrkEvent e;
  e.kind = format::BrkKind::kSbrk;
  e.old_break = reinterpret_cast<uintptr_t>(result);
  e.new_break = CurrentBreak();
  e.argument = increment;
  if (result == reinterpret_cast<void*>(-1)) e.flags |= format::kFlagFailed;
  e.syscalls.Add(SyscallKind::kBrk);
  e.syscalls.ns = ns;
  Record(&e, &stack, [](RecordWriter* w, const BrkEvent& ev) { w->Brk(ev); });
  errno = saved_errno;
}

void OnMemoryCall(long nr, void* addr, size_t length, int argument, int rc, uint64_t ns) {
  RecordSyscall(
      KernelCall(nr, {reinterpret_cast<uintptr_t>(addr), length, static_cast<uint64_t>(argument)},
                 rc != 0, 0, ns));
}

void OnModulesChanged() {
  g_trace.Record(
      [](RecordWriter& writer, uint32_t, uint64_t seq) { g_trace.WriteModules(&writer, seq); });
}

}  // namespace pagewaste::shim
