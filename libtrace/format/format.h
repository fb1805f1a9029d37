// The pagewaste trace format, version 5: the one place that spells it.
//
// A trace is a file header followed by a stream of chunks. Each chunk is an
// 8-byte header (little-endian u32 payload length, u32 ChunkFlags) followed
// by that many bytes of records. Every record starts with a one-byte
// RecordType and continues with unsigned LEB128 varints (see varint.h) and
// length-prefixed strings. Delta state (time, thread, previous address)
// starts at zero in every chunk, so a chunk decodes on its own: a chunk lost
// to a failed write costs its own records and nothing after it.
// Addresses are per thread: against the previous address of the same
// thread in the chunk (kAddressSlots, below), so that threads interleaved
// in a chunk keep the regular address streams of each (see kAddressBase).
// Events carry neither a time nor a thread: Time and Thread records set them
// for the events that follow, and the writer emits one only when the value
// changes. With the shim's coarse clock a burst of events shares one Time
// record, and a repetitive program writes a repetitive byte stream, which
// is what makes compressed traces small.
// Version 4 lets each thread of a process write chunks of its own
// (kChunkThread, below) without a lock between threads: every event in them
// carries a sequence number from one counter per process, and the reader
// merges the threads' chunks back into that order.
// A compressed chunk (kChunkZstd, written by `pagewaste run` once the
// program has exited) holds a zstd frame that expands to plain chunks.
// The writer publishes each record by rewriting its chunk's payload length,
// and marks the chunk finished when it moves on; an unfinished chunk is the
// last one of a trace whose process died, and its payload is whole records.
// The shim, the reader, the dump command and the tests include this header;
// docs/trace-format.md is the prose specification.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pagewaste::format {

// "PGWASTE" followed by a NUL: the first 8 bytes of every trace.
inline constexpr uint8_t kMagic[8] = {'P', 'G', 'W', 'A', 'S', 'T', 'E', 0};
inline constexpr uint16_t kVersion = 6;
// Version 3 added EndReason::kRawExit and nothing else; version 4 added
// thread chunks (with their gap areas and StackNodeAt records) and near or
// far address bases; version 5 added the bpf backend (Backend::kBpf), its
// Lost record, and kHeaderAttached; version 6 added the process's lifetime
// on the fine clock at the end of the End record:
// version 2 to 5 traces are read as they are.
inline constexpr uint16_t kOldestReadableVersion = 2;

// Fixed-size part of the header, little-endian, 64 bytes:
//   0  magic[8]
//   8  u16 version          10 u16 header_flags (HeaderFlags)
//  12  u32 page_size        16 u32 pid          20 u32 ppid
//  24  u64 session_id       (per `pagewaste run`, shared by its processes:
//      the run's pid in the high 32 bits, random low bits; see SessionPid)
//  32  u64 start_realtime_ns (CLOCK_REALTIME at start)
//  40  u64 start_monotonic_ns (CLOCK_MONOTONIC origin of record timestamps)
//  48  u32 backend (Backend)
//  52  u32 time_resolution_ns (how finely event times are told apart: the
//      shim's coarse clock ticks every few ms; 1 for exact times)
//  56  u64 sample_interval_bytes (0: every allocation recorded; else the
//      malloc family was sampled, one sample per that many bytes requested
//      on average: see kFlagSampled)
// followed by varint-prefixed strings: executable path, then varint argc and
// argc strings.
inline constexpr size_t kFixedHeaderSize = 64;
// The pid of the `pagewaste run` a session id belongs to: a trace at a path
// another run wants is replaced only once that run is gone. (Sessions made
// without run, and older traces, hold other bits there: their file is at
// worst left alone, and the new trace takes a suffix.)
inline constexpr uint32_t SessionPid(uint64_t session_id) {
  return static_cast<uint32_t>(session_id >> 32);
}
// The page sizes a reader accepts in a header: powers of two in this range.
inline constexpr uint32_t kMinPageSize = 4096;
inline constexpr uint32_t kMaxPageSize = 1u << 30;

enum class Backend : uint32_t { kPreload = 1, kPtrace = 2, kBpf = 3 };

// Chunks larger than this are rejected by the reader as corrupt.
inline constexpr uint32_t kMaxChunkPayload = 16u << 20;
inline constexpr size_t kChunkPrefixSize = 8;

// ChunkFlags. A chunk header of all zeros is space the shim reserved in the
// file but never used: the data ends there.
enum ChunkFlags : uint32_t {
  kChunkFinished = 1u << 0,  // the writer moved past it; more may follow
  // The payload is a u32 (little-endian) expanded size, at most
  // kMaxExpandedChunk, then one zstd frame that expands to that many bytes
  // of plain chunks (header and payload each, never compressed again).
  kChunkZstd = 1u << 1,
  // Holds the End record: the process is done with the trace (set with
  // kChunkFinished). Only such a trace may be rewritten compressed.
  kChunkEnd = 1u << 2,
  // The symbol section (symbol_section.h), written by `pagewaste run` after
  // the End record, in one or more chunks: the payload is a u32 expanded
  // size, at most kMaxExpandedChunk, then one zstd frame that expands to
  // symbol records (SymbolRecordType). Only such chunks may follow the End.
  kChunkSymbols = 1u << 3,
  // A thread chunk (version 4): one thread's records, each event numbered
  // (see kThreadChunkHeader). The payload length is the space the writer
  // reserved, fixed when it took the chunk; the records fill the first
  // `used` bytes after the payload header and the rest is unused. Thread
  // chunks of several threads are in the file in the order they were
  // reserved, not in the order of their events; an unfinished one is a
  // thread's last and ends nothing else.
  kChunkThread = 1u << 4,
};

// The payload of a thread chunk starts with a header, little-endian:
//   0 u32 used       bytes of records after this header
//   4 u32 gap_bytes  bytes of the gap area at the payload's end
//   8 u64 first_seq  the sequence number of the chunk's first event
//  16 u64 low_seq    no event in this chunk or in any chunk after it in the
//                    file has a smaller sequence number: a reader merging
//                    threads may deliver every event below it
// Each event (and ModuleMap record) of the chunk has the sequence number of
// the one before it plus one, unless the gap area says otherwise; the
// reader delivers the events of all thread chunks in sequence order. Other
// records (Time, Thread, Module, StackNodeAt) go with the event after them,
// Module records with the ModuleMap before them.
// The gap area holds varint pairs (skip, gap), read from the payload's end
// backwards (each byte before the one read last): after `skip` more events
// numbered one after the other, the next event's number is the last one's
// plus gap + 1. Kept apart from the records, so that a thread's repetitive
// records stay repetitive when other threads' events come between them (4
// threads at once: 3.2 MB of trace with the gaps among the records, 0.36
// MB apart).
inline constexpr size_t kThreadChunkHeader = 24;

// header_flags (the u16 at offset 10).
enum HeaderFlags : uint16_t {
  // The trace carries its symbol section: a reader needs no binary.
  kHeaderHasSymbols = 1u << 0,
  // (Version 5.) The producer attached to a process already running
  // (`pagewaste attach`): the trace starts at start_realtime_ns, not at the
  // program's start, so a free or an unmapping of memory allocated before
  // is not the program's whole story, and what it never saw allocated is
  // no leak.
  kHeaderAttached = 1u << 1,
};

// The records of a symbol section. Strings are numbered in the order they
// come, from 1 (0 is the empty string).
enum class SymbolRecordType : uint8_t {
  // String: varint length, bytes.
  kString = 0x01,
  // Address: varint address (a return address of the trace's stacks), varint
  // frame count (at most kMaxSymbolFrames), then per frame, innermost first:
  // varint function string, varint file string, varint line, varint module
  // string, varint offset in the module, u8 inlined (1: inlined into the
  // next frame).
  kAddress = 0x02,
  // Module: varint path string, varint build id string (hex; 0 when the
  // file has none), as the modules were found when run symbolized.
  kModule = 0x03,
};
inline constexpr uint32_t kMaxSymbolFrames = 64;
// The bytes of names (function, file, module) a symbol chunk's frames may
// hold, counted frame by frame: a large C++ program's section names a few
// tens of MiB.
inline constexpr uint64_t kMaxSymbolNameBytes = 256u << 20;
inline constexpr uint32_t kMaxExpandedChunk = 64u << 20;

// The previous address of each thread in a chunk is kept in
// kAddressSlots slots, the thread's slot being tid % kAddressSlots; a slot
// that held another thread starts again from 0. Writer and reader follow
// the same rule.
inline constexpr uint32_t kAddressSlots = 16;

// An address field (version 4; "address delta" below) is a varint v whose
// low bit picks what the rest, zigzag, counts from: 0, the thread's previous
// address in the chunk, used when the zigzag delta is below kNearAddress (a
// neighbouring block costs one or two bytes); 1, that previous address
// rounded down to a multiple of kAddressBase: a block far from the last
// one then has the same bytes each time it comes back, which is what lets
// zstd find it again (a live set freed in random order: 4.4 bytes per
// event became 3.4). Versions 2 and 3: a plain zigzag delta against the
// previous address.
inline constexpr uint64_t kNearAddress = 1u << 13;
inline constexpr uint64_t kAddressBase = 1u << 24;

// Longest string the writer emits (paths, argv entries); longer ones are cut.
inline constexpr size_t kMaxString = 4096;
// The deepest stack a trace may hold. Both producers keep 64 frames; the
// bound is there so that a crafted chain cannot make a replay's memory and
// output grow with its length (a report prints every frame of every site).
inline constexpr int kMaxStackDepth = 256;
// The largest stack node id a reader accepts (StackNodeAt gives ids
// explicitly; the producers' tables hold far fewer).
inline constexpr uint64_t kMaxStackNodeId = 1u << 24;
// Distinct modules (file and load address) in one trace: a process maps a
// few hundred; one that loads and unloads a plugin in a loop, one per load.
inline constexpr size_t kMaxModules = 1u << 16;
// Thread chunks a reader holds until the events before theirs have come:
// about one per thread of the process.
inline constexpr uint64_t kMaxPendingThreadBytes = 256u << 20;
// StackNodeAt records a reader holds until their parent comes (in another
// thread's chunk); a producer leaves a handful.
inline constexpr size_t kMaxWaitingStackNodes = 1u << 20;

enum class RecordType : uint8_t {
  // ModuleMap: varint generation. Starts a new snapshot of loaded modules;
  // the Module records that follow belong to it.
  kModuleMap = 0x01,
  // Module: varint load_bias, varint segment count, then per segment varint
  // start, varint length (absolute addresses of executable segments), then
  // string path, then (version 3 on) string build id: the module's GNU build
  // id in hex, empty when it has none.
  kModule = 0x02,
  // StackNode: varint parent id, varint ip. Ids are implicit: the n-th
  // StackNode in the trace has id n (1-based); id 0 is the empty stack.
  // A stack is the chain from a node to the root, innermost frame first.
  // A chain is at most kMaxStackDepth nodes long: a reader refuses a node
  // that would make it longer (the trace is corrupt from there on).
  kStackNode = 0x03,
  // Time: varint ns since the previous Time record in the chunk (since the
  // trace's start for the first). The time of the events that follow.
  kTime = 0x04,
  // Thread: varint tid. The thread of the events that follow.
  kThread = 0x05,
  // StackNodeAt (thread chunks only): varint id, varint parent id, varint
  // ip. A StackNode with its id given: threads intern stacks in one table
  // and write its nodes in their own chunks, so the reader may meet them out
  // of id order (but a parent's id is always below its child's).
  kStackNodeAt = 0x07,
  // Events share a prefix: varint stack id. Their time and thread are those
  // of the last Time and Thread records of the chunk, which the writer puts
  // before a chunk's first event.
  // Alloc: prefix, varint AllocKind, zigzag address delta, varint requested,
  // zigzag (usable - requested), varint alignment, varint mapped_bytes (bytes of the
  // allocation's own mapping, 0 if it shares heap pages), varint flags
  // (EventFlags), syscalls (see below).
  kAlloc = 0x10,
  // Free: prefix, varint FreeKind, zigzag address delta, varint mapped_bytes,
  // varint flags, syscalls.
  kFree = 0x11,
  // Mmap: prefix, zigzag address delta (result), varint length, varint prot,
  // varint map flags, zigzag fd, varint offset, varint flags, syscalls.
  kMmap = 0x12,
  // Munmap: prefix, zigzag address delta, varint length, varint flags,
  // varint resident pages, varint used bytes (both 0 unless
  // kFlagUsageMeasured; see usage_estimate.h), syscalls.
  kMunmap = 0x13,
  // Mremap: prefix, zigzag old address delta, varint old length, varint new
  // length, varint mremap flags, zigzag new address delta (against old
  // address), varint flags, syscalls.
  kMremap = 0x14,
  // Brk: prefix, varint BrkKind, varint old break, varint new break,
  // zigzag increment (sbrk) or requested break (brk), varint flags, syscalls.
  kBrk = 0x15,
  // MemoryCall: a memory system call without an event of its own (madvise,
  // mprotect), seen by the ptrace backend: prefix, varint SyscallKind,
  // zigzag address delta, varint length, varint argument (advice or prot),
  // varint flags, syscalls.
  kMemoryCall = 0x16,
  // The two commonest events in a compact form. AllocSmall: prefix, zigzag
  // address delta, varint requested, zigzag (usable - requested); it is an
  // Alloc of kind malloc with alignment, mapped_bytes and flags 0 and no
  // syscalls. FreeSmall: zigzag address delta, no prefix stack; a Free of
  // kind free with no stack, mapped_bytes and flags 0 and no syscalls.
  kAllocSmall = 0x17,
  kFreeSmall = 0x18,

  // End: varint EndReason, zigzag status, varint records written (all
  // records before this one), varint events, varint stack nodes, varint
  // chunks lost, varint bytes lost, syscalls (the shim's own since the trace
  // file was created), syscalls (all of the process's memory system calls
  // over that span, as a ptrace observer counted them; none without one),
  // syscalls (those the observer saw before the shim started).
  // Always the last record of a whole trace.
  kEnd = 0x7f,
  // Lost (version 5): varint count of events the producer knows happened
  // but could not record (the bpf backend: its ring buffer had no room for
  // them). Not an event itself; a trace that has one is incomplete.
  kLost = 0x19,
  // StacksCut (version 5): varint count of the trace's stacks the producer
  // cut at the depth it follows (the bpf backend: a frame-pointer chain
  // longer than its BPF program walks). Their outermost frames are missing;
  // the events are whole.
  kStacksCut = 0x1a,
};

// Syscalls on an event: varint bitmask over SyscallKind, then one varint
// count per set bit, lowest bit first, then (when the mask is not zero) a
// varint of the nanoseconds spent in them. "1 mmap, 900 ns" encodes as
// 01 01 84 07; none as 00.
enum class SyscallKind : uint8_t {
  kMmap = 0,
  kMunmap = 1,
  kMremap = 2,
  kBrk = 3,
  kMadvise = 4,
  kMprotect = 5,
  kOther = 6,
};
inline constexpr int kSyscallKinds = 7;
inline constexpr const char* kSyscallNames[kSyscallKinds] = {
    "mmap", "munmap", "mremap", "brk", "madvise", "mprotect", "other"};

enum class AllocKind : uint8_t {
  kMalloc = 0,
  kCalloc = 1,
  kRealloc = 2,  // the new block of a realloc; the old one gets a Free
  kPosixMemalign = 3,
  kAlignedAlloc = 4,
  kMemalign = 5,
  kValloc = 6,
  kPvalloc = 7,
  kReallocarray = 8,
};
inline constexpr int kAllocKinds = 9;
inline constexpr const char* kAllocKindNames[kAllocKinds] = {
    "malloc",   "calloc", "realloc", "posix_memalign", "aligned_alloc",
    "memalign", "valloc", "pvalloc", "reallocarray"};

enum class FreeKind : uint8_t { kFree = 0, kRealloc = 1 };

enum class BrkKind : uint8_t { kBrk = 0, kSbrk = 1 };

// EventFlags, a bitmask.
enum EventFlags : uint32_t {
  kFlagMmappedChunk = 1u << 0,   // malloc served by its own mapping
  kFlagFailed = 1u << 1,         // the call failed (no memory changed hands)
  kFlagFileBacked = 1u << 2,     // mmap of a file: recorded, not an allocation
  kFlagSyscallsEstimated = 1u << 3,
  kFlagUsageMeasured = 1u << 4,  // a Munmap carries resident pages and used bytes
  // A Munmap that is no system call: the mapping was still there at exit,
  // and the record only carries what it was used for.
  kFlagAtExit = 1u << 5,
  // A Brk that is no system call of the program's: where an allocator call
  // left the break (its brk calls are counted on that call's event).
  // old_break is the start of the heap (the kernel's start_brk).
  kFlagAllocatorHeap = 1u << 6,
  // An Alloc picked by sampling (pagewaste run --sample): it stands for
  // 1 / (1 - exp(-requested / sample_interval_bytes)) allocations of its
  // size (Poisson sampling by bytes). Without the flag, in a sampled trace,
  // an Alloc was recorded because it entered the kernel, and stands for
  // itself; a Free is recorded for the blocks whose Alloc was.
  kFlagSampled = 1u << 7,
};

enum class EndReason : uint8_t {
  kExit = 1,      // exit() or a return from main; status is the exit code
  kUnderscoreExit = 2,  // _exit()/_Exit(); status is the exit code
  kSignal = 3,    // a fatal signal; status is the signal number
  kExec = 4,      // the image was replaced by execve; the new one has its own trace
  kDetach = 5,    // tracing stopped for another reason (status unknown)
  // The process ended with an exit system call made outside the C library
  // (Go's runtime, syscall(SYS_exit_group)), so the shim could not write
  // the record: `pagewaste run` did, after the process had gone, from the
  // exit status its tracer saw. status is the exit code.
  kRawExit = 6,
};

// Status value meaning "not known" (e.g. exit code of a return from main
// that the shim did not see).
inline constexpr int64_t kUnknownStatus = -1;

// The observer handshake (pagewaste run --observe-syscalls): the shim calls
// munmap(&block, 0), which fails with EINVAL and changes nothing, once when
// its trace starts and once before its End record. A ptrace observer counts
// the process's memory system calls between the two and, at the second,
// writes kObservedMagic and the counts (u32 per SyscallKind) into the block,
// with those it saw from the image's exec to the first mark (the dynamic
// loader's, before the shim ran).
inline constexpr uint64_t kObservedMagic = 0x5645534250574750ull;  // "PGWPBSEV"
struct ObservedBlock {
  uint64_t magic;
  uint32_t counts[kSyscallKinds];
  uint32_t before_start[kSyscallKinds];
};

}  // namespace pagewaste::format
