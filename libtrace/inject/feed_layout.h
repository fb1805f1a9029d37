// The allocator feed: how the library `pagewaste attach` injects into a
// running process (feed_library.cpp) hands its malloc-family records to
// the tool (feed_reader.h). One shared memory file (a memfd the library
// creates; the tool opens it through /proc/PID/fd): a control page, then a
// ring of records, mapped twice in a row on both sides so that a record
// may run over the ring's end and still be read in one piece.
//
// Producers are the process's threads (and those of the processes it
// forks, which share the file): each reserves its record's bytes with a
// compare-and-swap on `head`, fills them, and commits the record by storing
// its kind last. The one consumer reads records in the order they were
// reserved, zeroes them, and moves `tail` on. A free reserves its record
// before the real free, so that another thread that gets the same block
// next reserves after it: the records are in the order the memory changed
// hands.
#pragma once

#include <cstdint>

namespace pagewaste::inject {

inline constexpr uint64_t kFeedMagic = 0x646565667770ull;  // "pwfeed"
inline constexpr uint32_t kFeedVersion = 3;
inline constexpr uint64_t kFeedControlBytes = 4096;
inline constexpr int kFeedMaxDepth = 64;

// The exported entry point the tool calls in the process (with the ring's
// bytes, a power of two, and the sampling interval, 0 for none): returns
// the memfd, or -errno.
inline constexpr const char* kFeedStartSymbol = "pagewaste_feed_start";

// The first page of the file. What the producers write (head), what the
// consumer writes (tail and its clock) and what every hook reads
// (recording) lie on cache lines of their own: a line written by one core
// and read by the other costs a transfer at each write.
struct FeedControl {
  uint64_t magic;
  uint32_t version;
  uint32_t pad;
  uint64_t ring_bytes;
  // Where each process that shares the feed marks a thread inside a
  // malloc-family call: one byte per thread id (1: inside; 2: the
  // library's own system calls), which the BPF program reads at each
  // memory system call to charge it to that call.
  uint64_t thread_marks;
  uint64_t thread_marks_bytes;
  // Call sites patched, and those the table had no room for.
  uint32_t patched_slots;
  uint32_t unpatched_slots;
  // 1 while the tool records; it sets 0 to detach, and the first hook
  // that sees it puts every call site back as it found it and sets 2.
  alignas(64) uint32_t recording;
  alignas(64) uint64_t head;  // bytes reserved, ever (atomic)
  alignas(64) uint64_t tail;  // bytes consumed, ever (atomic)
  // When the consumer last read (CLOCK_MONOTONIC): a producer that finds
  // the ring full waits while the consumer reads, and drops its record
  // once the consumer has not read for a second.
  uint64_t consumer_ns;
  // Records the ring had no room for (atomic): the consumer was gone.
  alignas(64) uint64_t lost;
};
static_assert(sizeof(FeedControl) <= kFeedControlBytes);

// The thread marks (FeedControl::thread_marks), as the BPF program reads
// them (bpf/bpf_events.h, PW_MARK_*).
inline constexpr uint8_t kMarkAllocator = 1;
inline constexpr uint8_t kMarkOwn = 2;

enum FeedRecordKind : uint32_t {
  kFeedUncommitted = 0,
  kFeedAlloc = 1,
  kFeedFree = 2,
  // Bytes a free reserved before its call that turned out to give nothing
  // back the trace holds (a failed realloc; under sampling, a block never
  // recorded): the consumer passes over them.
  kFeedSkip = 3,
};

enum FeedRecordFlags : uint32_t {
  kFeedSampled = 1u << 0,   // picked by sampling
  kFeedStackCut = 1u << 1,  // the stack could not be unwound to its end
};

// One record: a block handed out (kFeedAlloc: kind is format::AllocKind)
// or given back (kFeedFree: kind is format::FreeKind; a realloc's old
// block is a record of its own, before the new one's). `size`, `tid` and
// `tgid` are stored when the bytes are reserved, before the record is
// committed.
struct FeedRecord {
  uint32_t record;  // FeedRecordKind; stored last
  uint32_t size;    // of the whole record, a multiple of 8
  uint32_t tid;
  uint32_t tgid;
  uint64_t time_ns;  // CLOCK_MONOTONIC, when the call returned
  uint32_t kind;
  uint32_t flags;
  uint64_t address;
  uint64_t requested;
  uint64_t alignment;
  // glibc's two words before the block: the new one's after the call, the
  // freed one's before it.
  uint64_t chunk[2];
  uint32_t depth;
  uint32_t pad;
  uint64_t ips[kFeedMaxDepth];  // return addresses, innermost first; depth of them
};

inline constexpr uint32_t kFeedFixedBytes = sizeof(FeedRecord) - sizeof(uint64_t) * kFeedMaxDepth;

}  // namespace pagewaste::inject
