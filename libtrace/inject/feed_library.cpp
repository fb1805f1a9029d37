// The allocator feed's library: what `pagewaste attach` loads into a
// running process (injector.h) to see its malloc-family calls at a small
// cost each, where a uprobe would trap into the kernel four times per
// malloc/free pair. Its entry point creates the shared feed (feed_layout.h)
// and points the process's call sites of the malloc family at the hooks
// below (call_sites.h); each hook calls the real function and writes a
// record of what it did, with the caller's stack, to the feed. When the
// tool detaches, the first hook that sees it puts the call sites back,
// and the process runs as before.
//
// The hooks mark their thread while the real call runs, so that the BPF
// program that records the memory system calls charges those the
// allocator makes to the call (feed_layout.h, thread_marks).
//
// Like the preload shim, this runs inside other people's programs: no
// allocation, no lock on the hot path but the ring's reservation, errno
// left as the real call left it.
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "feed_layout.h"
#include "format/format.h"
#include "inject/call_sites.h"
#include "producer/raw_mmap.h"
#include "format/sample_gap.h"
#include "shim/fast_unwind.h"
#include "shim/module_map.h"
#include "shim/sampled_blocks.h"

#define PW_EXPORT extern "C" __attribute__((visibility("default")))

namespace pagewaste::inject {
namespace {

using format::AllocKind;

struct RealFunctions {
  void* (*malloc)(size_t);
  void* (*calloc)(size_t, size_t);
  void* (*realloc)(void*, size_t);
  void* (*reallocarray)(void*, size_t, size_t);
  void (*free)(void*);
  int (*posix_memalign)(void**, size_t, size_t);
  void* (*aligned_alloc)(size_t, size_t);
  void* (*memalign)(size_t, size_t);
  void* (*valloc)(size_t);
  void* (*pvalloc)(size_t);
  void* (*dlopen)(const char*, int);
  int (*dlclose)(void*);
};
RealFunctions real;
void** g_current_break = nullptr;  // glibc's __curbrk: a moved break is a brk call
bool g_glibc_chunks = false;       // the real malloc is glibc's: its chunk headers can be read

FeedControl* g_control = nullptr;
uint8_t* g_ring = nullptr;  // the ring, mapped twice in a row
uint8_t* g_marks = nullptr;
uint64_t g_marks_bytes = 0;
uint64_t g_sample_interval = 0;
uint32_t g_pid = 0;
shim::CodeRange g_own_code;
constinit shim::SampledBlocks g_sampled;
int g_sampled_lock = 0;

struct ThreadState {
  uint32_t tid;
  uint32_t inside;  // in a hook: calls made from there are not recorded
  int64_t sample_left;
  uint64_t rng;
  // The consumer's tail as this thread last read it: the tail only moves
  // on, so room under it is room (read again only when it shows none).
  uint64_t tail_seen;
};
// Initial-exec: a global-dynamic variable would be allocated, with malloc,
// at a thread's first hook. 32 bytes fit the static TLS the loader keeps
// for libraries loaded late (the stack walk's memo would not: this build of
// the walk keeps none, and makes no system call).
__thread ThreadState t_thread __attribute__((tls_model("initial-exec"))) = {0, 0, -1, 0, 0};

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

uint32_t Tid() {
  if (!t_thread.tid) t_thread.tid = static_cast<uint32_t>(syscall(SYS_gettid));
  return t_thread.tid;
}

// The thread's mark, for the BPF program (feed_layout.h).
void Mark(uint8_t value) {
  uint32_t tid = Tid();
  if (g_marks && tid < g_marks_bytes) __atomic_store_n(&g_marks[tid], value, __ATOMIC_RELAXED);
}

// ---- The ring ------------------------------------------------------------------

// Room for size bytes: waits while the consumer reads, gives up (and
// counts the record lost) once it has not for a second, or has detached.
FeedRecord* Reserve(uint32_t size) {
  FeedControl* c = g_control;
  uint64_t head = __atomic_load_n(&c->head, __ATOMIC_RELAXED);
  for (;;) {
    if (head + size - t_thread.tail_seen > c->ring_bytes)
      t_thread.tail_seen = __atomic_load_n(&c->tail, __ATOMIC_ACQUIRE);
    if (head + size - t_thread.tail_seen > c->ring_bytes) {
      uint64_t read_at = __atomic_load_n(&c->consumer_ns, __ATOMIC_RELAXED);
      uint64_t silent_ns = NowNs() - read_at;
      if (!__atomic_load_n(&c->recording, __ATOMIC_RELAXED) || silent_ns > 1000000000u) {
        __atomic_add_fetch(&c->lost, 1, __ATOMIC_RELAXED);
        // A consumer silent for ten seconds is gone (killed): detach as it
        // would have, and the next hook puts the call sites back.
        uint32_t recording = 1;
        if (silent_ns > 10000000000u)
          __atomic_compare_exchange_n(&c->recording, &recording, 0, false, __ATOMIC_ACQ_REL,
                                      __ATOMIC_RELAXED);
        return nullptr;
      }
      syscall(SYS_sched_yield);
      head = __atomic_load_n(&c->head, __ATOMIC_RELAXED);
      continue;
    }
    if (__atomic_compare_exchange_n(&c->head, &head, head + size, true, __ATOMIC_ACQ_REL,
                                    __ATOMIC_RELAXED))
      break;
  }
  auto* r = reinterpret_cast<FeedRecord*>(g_ring + (head & (c->ring_bytes - 1)));
  __atomic_store_n(&r->size, size, __ATOMIC_RELAXED);
  __atomic_store_n(&r->tid, Tid(), __ATOMIC_RELAXED);
  __atomic_store_n(&r->tgid, g_pid, __ATOMIC_RELAXED);
  return r;
}

void Commit(FeedRecord* r, FeedRecordKind kind) {
  __atomic_store_n(&r->record, static_cast<uint32_t>(kind), __ATOMIC_RELEASE);
}

// ---- What a record says ------------------------------------------------------------

// glibc's two words before a block (prev_size, size with flag bits).
void ReadChunk(const void* p, uint64_t words[2]) {
  if (!p || !g_glibc_chunks) {
    words[0] = words[1] = 0;
    return;
  }
  memcpy(words, static_cast<const uint8_t*>(p) - 16, 16);
}
bool OwnMapping(const uint64_t words[2]) { return (words[1] & 2) != 0; }

// Sampling, as the preload shim samples (shim/tracker.cpp): a Poisson
// process over the bytes requested, the gap drawn per thread.
int64_t NextGap() { return NextSampleGap(&t_thread.rng, g_sample_interval); }

bool Picked(uint64_t requested) {
  if (t_thread.sample_left < 0) t_thread.sample_left = NextGap();
  if (requested >= static_cast<uint64_t>(t_thread.sample_left)) {
    t_thread.sample_left = NextGap();
    return true;
  }
  t_thread.sample_left -= static_cast<int64_t>(requested);
  return false;
}

void LockSampled() {
  while (__atomic_exchange_n(&g_sampled_lock, 1, __ATOMIC_ACQUIRE)) syscall(SYS_sched_yield);
}
void UnlockSampled() { __atomic_store_n(&g_sampled_lock, 0, __ATOMIC_RELEASE); }

// Under sampling, whether the free of p is recorded: its allocation was.
bool WasRecorded(const void* p) {
  auto address = reinterpret_cast<uint64_t>(p);
  if (!g_sampled.MaybeHolds(address)) return false;
  LockSampled();
  bool held = g_sampled.Remove(address);
  UnlockSampled();
  return held;
}

// One allocator call in progress: the thread marked and the break noted
// before the real call, what it changed read after.
class Call {
 public:
  Call() : break_before_(g_current_break ? *g_current_break : nullptr) {
    t_thread.inside = 1;
    Mark(kMarkAllocator);
  }
  void Done() {
    Mark(0);
    t_thread.inside = 0;
  }
  bool MovedBreak() const { return g_current_break && *g_current_break != break_before_; }

 private:
  void* break_before_;
};

// Whether hooks record: the feed is on, and the call is not the hook's own.
// A hook that finds the tool detached puts the call sites back.
bool Recording() {
  FeedControl* c = g_control;
  if (!c || t_thread.inside) return false;
  if (__atomic_load_n(&c->recording, __ATOMIC_ACQUIRE) == 1) return true;
  uint32_t expected = 0;
  if (__atomic_compare_exchange_n(&c->recording, &expected, 2, false, __ATOMIC_ACQ_REL,
                                  __ATOMIC_RELAXED)) {
    // (Its mprotect calls, for entries in RELRO, are the library's own.)
    t_thread.inside = 1;
    Mark(kMarkOwn);
    RestoreCallSites();
    Mark(0);
    t_thread.inside = 0;
  }
  return false;
}

// A block handed out (result) for a call that asked for requested bytes.
void RecordAlloc(AllocKind kind, void* result, uint64_t requested, uint64_t alignment,
                 bool moved_break, void* caller) {
  if (!result) return;
  uint64_t chunk[2];
  ReadChunk(result, chunk);
  uint32_t flags = 0;
  if (g_sample_interval) {
    if (!moved_break && !OwnMapping(chunk)) {
      if (!Picked(requested)) return;
      flags |= kFeedSampled;
    }
    LockSampled();
    g_sampled.Insert(reinterpret_cast<uint64_t>(result));
    UnlockSampled();
  }
  uintptr_t ips[kFeedMaxDepth];
  int depth = shim::FastBacktrace(ips, kFeedMaxDepth, g_own_code.start, g_own_code.end);
  uint32_t frames = depth > 0 ? static_cast<uint32_t>(depth) : 1;
  FeedRecord* r = Reserve(kFeedFixedBytes + frames * 8);
  if (!r) return;
  r->time_ns = NowNs();
  r->kind = static_cast<uint32_t>(kind);
  r->flags = flags;
  r->address = reinterpret_cast<uint64_t>(result);
  r->requested = requested;
  r->alignment = alignment;
  r->chunk[0] = chunk[0];
  r->chunk[1] = chunk[1];
  if (depth > 0) {
    memcpy(r->ips, ips, frames * sizeof ips[0]);
  } else {
    r->ips[0] = reinterpret_cast<uintptr_t>(caller);
    r->flags |= kFeedStackCut;
  }
  r->depth = frames;
  Commit(r, kFeedAlloc);
}

// A block given back: reserved before the real call (feed_layout.h), so
// that whoever gets the block next is recorded after.
class Release {
 public:
  Release(void* p, format::FreeKind kind) : p_(p), kind_(kind) {
    if (!p) return;  // realloc(NULL, n): nothing given back
    ReadChunk(p, chunk_);
    // Under sampling, a block whose allocation was not recorded is not
    // freed in the trace, unless the free enters the kernel.
    bool recorded = !g_sample_interval || WasRecorded(p);
    if (!recorded && !OwnMapping(chunk_)) maybe_skipped_ = true;
    r_ = Reserve(kFeedFixedBytes);
  }
  // given_back: the block went (a failed realloc keeps it).
  void Done(bool given_back, bool moved_break) {
    if (!r_) return;
    if (!given_back || (maybe_skipped_ && !moved_break)) {
      r_->time_ns = NowNs();
      r_->depth = 0;
      return Commit(r_, kFeedSkip);
    }
    r_->time_ns = NowNs();
    r_->kind = static_cast<uint32_t>(kind_);
    r_->flags = 0;
    r_->address = reinterpret_cast<uint64_t>(p_);
    r_->chunk[0] = chunk_[0];
    r_->chunk[1] = chunk_[1];
    r_->depth = 0;
    Commit(r_, kFeedFree);
  }

 private:
  void* p_;
  format::FreeKind kind_;
  uint64_t chunk_[2] = {0, 0};
  bool maybe_skipped_ = false;
  FeedRecord* r_ = nullptr;
};

// ---- The hooks -------------------------------------------------------------------
// Each keeps a frame pointer (the stack walk starts from its frame).

#define PW_CALLER __builtin_return_address(0)

void* Malloc(size_t size) {
  if (!Recording()) return real.malloc(size);
  Call call;
  void* p = real.malloc(size);
  int saved = errno;
  call.Done();
  RecordAlloc(AllocKind::kMalloc, p, size, 0, call.MovedBreak(), PW_CALLER);
  errno = saved;
  return p;
}

void* Calloc(size_t n, size_t size) {
  if (!Recording()) return real.calloc(n, size);
  Call call;
  void* p = real.calloc(n, size);
  int saved = errno;
  call.Done();
  size_t total = 0;
  __builtin_mul_overflow(n, size, &total);
  RecordAlloc(AllocKind::kCalloc, p, total, 0, call.MovedBreak(), PW_CALLER);
  errno = saved;
  return p;
}

void Free(void* p) {
  if (!p || !Recording()) return real.free(p);
  Release release(p, format::FreeKind::kFree);
  Call call;
  real.free(p);
  int saved = errno;
  call.Done();
  release.Done(true, call.MovedBreak());
  errno = saved;
}

// realloc and reallocarray: the old block's Free, then the new block.
void* Reallocate(AllocKind kind, void* p, size_t size, size_t a, size_t b, void* caller) {
  Release release(p, format::FreeKind::kRealloc);
  Call call;
  void* result = kind == AllocKind::kRealloc ? real.realloc(p, a) : real.reallocarray(p, a, b);
  int saved = errno;
  call.Done();
  // realloc(p, 0) frees p and returns null; a failed call keeps p.
  release.Done(result || size == 0, call.MovedBreak());
  RecordAlloc(kind, result, size, 0, call.MovedBreak(), caller);
  errno = saved;
  return result;
}

void* Realloc(void* p, size_t size) {
  if (!Recording()) return real.realloc(p, size);
  return Reallocate(AllocKind::kRealloc, p, size, size, 0, PW_CALLER);
}

void* Reallocarray(void* p, size_t n, size_t size) {
  size_t total = 0;
  // (A product that overflows fails, and changes nothing.)
  if (!Recording() || __builtin_mul_overflow(n, size, &total))
    return real.reallocarray(p, n, size);
  return Reallocate(AllocKind::kReallocarray, p, total, n, size, PW_CALLER);
}

int PosixMemalign(void** out, size_t alignment, size_t size) {
  if (!Recording()) return real.posix_memalign(out, alignment, size);
  Call call;
  int rc = real.posix_memalign(out, alignment, size);
  call.Done();
  if (rc == 0)
    RecordAlloc(AllocKind::kPosixMemalign, *out, size, alignment, call.MovedBreak(), PW_CALLER);
  return rc;
}

// aligned_alloc, memalign, valloc and pvalloc.
#define PW_ALIGNED_HOOK(Name, name, kind, params, args, alignment)                   \
  void* Name params {                                                                \
    if (!Recording()) return real.name args;                                         \
    Call call;                                                                       \
    void* p = real.name args;                                                        \
    int saved = errno;                                                               \
    call.Done();                                                                     \
    RecordAlloc(AllocKind::kind, p, size, alignment, call.MovedBreak(), PW_CALLER);  \
    errno = saved;                                                                   \
    return p;                                                                        \
  }
PW_ALIGNED_HOOK(AlignedAlloc, aligned_alloc, kAlignedAlloc, (size_t align, size_t size),
                (align, size), align)
PW_ALIGNED_HOOK(Memalign, memalign, kMemalign, (size_t align, size_t size), (align, size), align)
PW_ALIGNED_HOOK(Valloc, valloc, kValloc, (size_t size), (size), 4096)
PW_ALIGNED_HOOK(Pvalloc, pvalloc, kPvalloc, (size_t size), (size), 4096)
#undef PW_ALIGNED_HOOK

void RedirectAll();

// A library loaded late binds its calls to the real functions: point
// them here too. One unloaded takes its entries out of the table.
void* Dlopen(const char* file, int mode) {
  void* handle = real.dlopen(file, mode);
  if (handle && g_control && __atomic_load_n(&g_control->recording, __ATOMIC_ACQUIRE) == 1)
    RedirectAll();
  return handle;
}

int Dlclose(void* handle) {
  int rc = real.dlclose(handle);
  ForgetUnloadedCallSites();
  shim::ForgetUnwindRules();
  return rc;
}

void RedirectAll() {
  const Redirect redirects[] = {
      {"malloc", reinterpret_cast<void*>(&Malloc)},
      {"calloc", reinterpret_cast<void*>(&Calloc)},
      {"realloc", reinterpret_cast<void*>(&Realloc)},
      {"reallocarray", reinterpret_cast<void*>(&Reallocarray)},
      {"free", reinterpret_cast<void*>(&Free)},
      {"posix_memalign", reinterpret_cast<void*>(&PosixMemalign)},
      {"aligned_alloc", reinterpret_cast<void*>(&AlignedAlloc)},
      {"memalign", reinterpret_cast<void*>(&Memalign)},
      {"valloc", reinterpret_cast<void*>(&Valloc)},
      {"pvalloc", reinterpret_cast<void*>(&Pvalloc)},
      {"dlopen", reinterpret_cast<void*>(&Dlopen)},
      {"dlclose", reinterpret_cast<void*>(&Dlclose)},
  };
  // The mprotect calls of RELRO entries are the library's own.
  uint32_t inside = t_thread.inside;
  t_thread.inside = 1;
  Mark(kMarkOwn);
  RedirectCallSites(redirects, sizeof redirects / sizeof redirects[0],
                    reinterpret_cast<const void*>(&RedirectAll));
  Mark(0);
  t_thread.inside = inside;
  if (g_control) {
    g_control->patched_slots = RedirectedCallSites();
    g_control->unpatched_slots = UnredirectedCallSites();
  }
}

// ---- Starting --------------------------------------------------------------------

bool ResolveRealFunctions() {
  auto find = [](const char* name) { return dlsym(RTLD_DEFAULT, name); };
  real.malloc = reinterpret_cast<void* (*)(size_t)>(find("malloc"));
  real.calloc = reinterpret_cast<void* (*)(size_t, size_t)>(find("calloc"));
  real.realloc = reinterpret_cast<void* (*)(void*, size_t)>(find("realloc"));
  real.reallocarray = reinterpret_cast<void* (*)(void*, size_t, size_t)>(find("reallocarray"));
  real.free = reinterpret_cast<void (*)(void*)>(find("free"));
  real.posix_memalign = reinterpret_cast<int (*)(void**, size_t, size_t)>(find("posix_memalign"));
  real.aligned_alloc = reinterpret_cast<void* (*)(size_t, size_t)>(find("aligned_alloc"));
  real.memalign = reinterpret_cast<void* (*)(size_t, size_t)>(find("memalign"));
  real.valloc = reinterpret_cast<void* (*)(size_t)>(find("valloc"));
  real.pvalloc = reinterpret_cast<void* (*)(size_t)>(find("pvalloc"));
  real.dlopen = reinterpret_cast<void* (*)(const char*, int)>(find("dlopen"));
  real.dlclose = reinterpret_cast<int (*)(void*)>(find("dlclose"));
  g_current_break = static_cast<void**>(find("__curbrk"));
  Dl_info dl;
  g_glibc_chunks = dladdr(reinterpret_cast<void*>(real.malloc), &dl) && dl.dli_fname &&
                   strstr(dl.dli_fname, "libc.so");
  return real.malloc && real.calloc && real.realloc && real.free && real.posix_memalign &&
         real.aligned_alloc && real.memalign && real.valloc && real.pvalloc &&
         real.reallocarray && real.dlopen && real.dlclose;
}

uint64_t ReadPidMax() {
  char text[32] = {};
  int fd = open("/proc/sys/kernel/pid_max", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 4194304;
  ssize_t n = read(fd, text, sizeof text - 1);
  close(fd);
  uint64_t value = 0;
  for (ssize_t i = 0; i < n && text[i] >= '0' && text[i] <= '9'; ++i)
    value = value * 10 + static_cast<uint64_t>(text[i] - '0');
  return value ? value : 4194304;
}

// The control page and the ring mapped twice in a row: [control][ring][ring].
int MapFeed(int fd, uint64_t ring_bytes) {
  uint64_t total = kFeedControlBytes + 2 * ring_bytes;
  auto* base = static_cast<uint8_t*>(producer::RawMmap(nullptr, total, PROT_NONE,
                                                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (!base) return -ENOMEM;
  if (!producer::RawMmap(base, kFeedControlBytes + ring_bytes, PROT_READ | PROT_WRITE,
                         MAP_SHARED | MAP_FIXED, fd, 0) ||
      !producer::RawMmap(base + kFeedControlBytes + ring_bytes, ring_bytes,
                         PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd,
                         static_cast<off_t>(kFeedControlBytes))) {
    producer::RawMunmap(base, total);
    return -ENOMEM;
  }
  g_control = reinterpret_cast<FeedControl*>(base);
  g_ring = base + kFeedControlBytes;
  return 0;
}

void AfterForkChild() {
  t_thread.tid = 0;
  g_pid = static_cast<uint32_t>(syscall(SYS_getpid));
}

}  // namespace
}  // namespace pagewaste::inject

using namespace pagewaste::inject;

// Called by the tool in the stopped process (injector.cpp): returns the
// feed's file descriptor (the tool opens it and asks the process to close
// it), or -errno.
PW_EXPORT int pagewaste_feed_start(uint64_t ring_bytes, uint64_t sample_interval) {
  if (!ring_bytes || (ring_bytes & (ring_bytes - 1)) || ring_bytes % 4096) return -EINVAL;
  // Another attach still reading (its consumer read within two seconds).
  if (g_control && __atomic_load_n(&g_control->recording, __ATOMIC_ACQUIRE) == 1 &&
      NowNs() - __atomic_load_n(&g_control->consumer_ns, __ATOMIC_RELAXED) < 2000000000u)
    return -EBUSY;
  static bool started_once = false;
  static bool sampling_ready = false;
  if (!started_once) {
    if (!ResolveRealFunctions()) return -ENOSYS;
    if (!pagewaste::shim::InitFastUnwind()) return -ENOMEM;
    g_own_code = pagewaste::shim::FindCodeContaining(reinterpret_cast<const void*>(&RedirectAll));
    g_marks_bytes = ReadPidMax();
    g_marks = static_cast<uint8_t*>(pagewaste::producer::RawReserve(g_marks_bytes));
    if (!g_marks) return -ENOMEM;
    pthread_atfork(nullptr, nullptr, AfterForkChild);
    started_once = true;
  }
  if (sample_interval && !sampling_ready) {
    if (!g_sampled.Init()) return -ENOMEM;
    sampling_ready = true;
  }
  int fd = static_cast<int>(syscall(SYS_memfd_create, "pagewaste-feed", MFD_CLOEXEC));
  if (fd < 0) return -errno;
  if (ftruncate(fd, static_cast<off_t>(kFeedControlBytes + ring_bytes)) != 0) {
    int error = errno;
    close(fd);
    return -error;
  }
  // An earlier attach's feed stays mapped (a hook may still be writing to
  // it); the tool gave its memory back.
  if (int rc = MapFeed(fd, ring_bytes); rc < 0) {
    close(fd);
    return rc;
  }
  g_pid = static_cast<uint32_t>(syscall(SYS_getpid));
  g_sample_interval = sample_interval;
  FeedControl* c = g_control;
  c->magic = kFeedMagic;
  c->version = kFeedVersion;
  c->ring_bytes = ring_bytes;
  c->thread_marks = reinterpret_cast<uint64_t>(g_marks);
  c->thread_marks_bytes = g_marks_bytes;
  c->consumer_ns = NowNs();
  __atomic_store_n(&c->recording, 1, __ATOMIC_RELEASE);
  RedirectAll();
  return fd;
}
