// Record encoding. Each encoder below lists its fields in the order
// format.h specifies them; an example byte sequence is given where the
// layout is not obvious.
#include "record_writer.h"

#include <cstring>

#include "format/little_endian.h"
#include "format/varint.h"

namespace pagewaste {
namespace {

using format::RecordType;

uint8_t* Varint(uint8_t* p, uint64_t v) { return p + EncodeVarint(v, p); }

// A string: varint length, then the bytes (no terminator). "ab" -> 02 61 62.
uint8_t* String(uint8_t* p, const char* s) {
  size_t n = s ? strnlen(s, format::kMaxString) : 0;
  p = Varint(p, n);
  memcpy(p, s, n);
  return p + n;
}

// Bitmask of kinds present, then one count per set bit, lowest first, then
// (if any) the nanoseconds spent in them. 1 mmap + 2 brk taking 1000 ns ->
// mask 0b1001 = 09, then 01 02, then e8 07.
// Tested a word at a time: the counts were just copied in wide stores,
// which narrow loads would wait on.
bool NoSyscalls(const SyscallCounts& s) {
  static_assert(format::kSyscallKinds == 7);
  uint64_t words[3];
  memcpy(words, s.count, sizeof words);
  return !(words[0] | words[1] | words[2] | s.count[6]);
}

uint8_t* Syscalls(uint8_t* p, const SyscallCounts& s) {
  if (NoSyscalls(s)) {  // most events: one zero byte
    *p = 0;
    return p + 1;
  }
  uint32_t mask = 0;
  for (int i = 0; i < format::kSyscallKinds; ++i) mask |= uint32_t{s.count[i] != 0} << i;
  p = Varint(p, mask);
  for (int i = 0; i < format::kSyscallKinds; ++i)
    if (s.count[i]) p = Varint(p, s.count[i]);
  return Varint(p, s.ns);
}

// An event, and the Time and Thread records that may go before it.
constexpr size_t kEventMax = 3 + 18 * kMaxVarintBytes +
                             (2 + format::kSyscallKinds) * kMaxVarintBytes;

}  // namespace

size_t EncodeHeader(const HeaderInfo& info, uint8_t* out, size_t cap) {
  size_t need = format::kFixedHeaderSize + 2 * kMaxVarintBytes +
                strnlen(info.exe, format::kMaxString);
  for (int i = 0; i < info.argc; ++i)
    need += kMaxVarintBytes + strnlen(info.argv[i], format::kMaxString);
  if (need > cap) return 0;
  memset(out, 0, format::kFixedHeaderSize);
  memcpy(out, format::kMagic, sizeof format::kMagic);
  PutLE(out + 8, format::kVersion, 2);
  PutLE(out + 10, info.flags, 2);
  PutLE(out + 12, info.process.page_size, 4);
  PutLE(out + 16, info.process.pid, 4);
  PutLE(out + 20, info.process.ppid, 4);
  PutLE(out + 24, info.process.session_id, 8);
  PutLE(out + 32, info.process.start_realtime_ns, 8);
  PutLE(out + 40, info.process.start_monotonic_ns, 8);
  PutLE(out + 48, static_cast<uint32_t>(info.process.backend), 4);
  PutLE(out + 52, info.process.time_resolution_ns, 4);
  PutLE(out + 56, info.process.sample_interval_bytes, 8);
  uint8_t* p = out + format::kFixedHeaderSize;
  p = String(p, info.exe);
  p = Varint(p, static_cast<uint64_t>(info.argc));
  for (int i = 0; i < info.argc; ++i) p = String(p, info.argv[i]);
  return static_cast<size_t>(p - out);
}

// A gap pair: two varints.
constexpr size_t kMaxGapPair = 2 * kMaxVarintBytes;

size_t CompactThreadChunk(uint8_t* chunk, size_t size) {
  uint8_t* header = chunk + format::kChunkPrefixSize;
  size_t used = GetLE(header, 4);
  size_t gaps = GetLE(header + 4, 4);
  uint8_t* records_end = header + format::kThreadChunkHeader + used;
  memmove(records_end, chunk + size - gaps, gaps);
  PutLE32(chunk, static_cast<uint32_t>(format::kThreadChunkHeader + used + gaps));
  return static_cast<size_t>(records_end + gaps - chunk);
}

uint8_t* RecordWriter::Reserve(size_t max_size) {
  if (chunk_ && used_ + max_size + gap_bytes_ + (thread_chunks_ ? kMaxGapPair : 0) > capacity_)
    Flush();
  if (!chunk_) {
    chunk_ = sink_->NextChunk(capacity_);
    if (!chunk_) chunk_ = own_buffer_;
    used_ = HeaderSize();
    if (thread_chunks_) {
      // Its whole size is taken: the length is fixed, the header's `used`
      // publishes the records.
      PutLE(chunk_, capacity_ - format::kChunkPrefixSize, 4);
      PutLE(chunk_ + 4, format::kChunkThread, 4);
      uint8_t* header = chunk_ + format::kChunkPrefixSize;
      PutLE(header, 0, 8);
      PutLE(header + 8, 0, 8);
      PutLE(header + 16, sink_->LowSeq(), 8);
      chunk_has_seq_ = false;
      gap_bytes_ = 0;
      events_since_gap_ = 0;
    } else {
      PutLE(chunk_, 0, 8);  // empty and open
    }
    chunk_has_event_ = false;
    last_time_ = 0;
    last_tid_ = 0;
    for (AddressSlot& slot : last_address_) slot = {};
  }
  return chunk_ + used_;
}

void RecordWriter::Commit(uint8_t* end, bool is_event) {
  used_ = static_cast<size_t>(end - chunk_);
  if (thread_chunks_)  // records and gaps published together, in one store
    PutLE64(chunk_ + format::kChunkPrefixSize,
            (uint64_t{gap_bytes_} << 32) | static_cast<uint32_t>(used_ - HeaderSize()));
  else
    PutLE32(chunk_, static_cast<uint32_t>(used_ - format::kChunkPrefixSize));
  records_ += 1 + pending_records_;
  pending_records_ = 0;
  if (is_event) ++events_;
}

void RecordWriter::Flush() { Flush(0); }

void RecordWriter::Flush(uint32_t extra_flags) {
  if (!chunk_) return;
  size_t size = used_;
  if (thread_chunks_) {
    extra_flags |= format::kChunkThread;
    size = capacity_;
  } else if (used_ == format::kChunkPrefixSize) {
    chunk_ = nullptr;  // nothing in it; a mapped chunk stays unused space
    return;
  }
  PutLE(chunk_ + 4, format::kChunkFinished | extra_flags, 4);
  if (!sink_->FinishChunk(chunk_, size)) {
    ++chunks_lost_;
    bytes_lost_ += used_;
  }
  chunk_ = nullptr;
}

void RecordWriter::Reset() {
  chunk_ = nullptr;
  pending_records_ = 0;
  records_ = events_ = stack_nodes_ = chunks_lost_ = bytes_lost_ = 0;
}

// Event prefix: a Time record if the time moved on since the chunk's last
// one (times never go back within a chunk: an earlier one is taken as the
// last), a Thread record if the thread changed, then type and stack. The first
// event of a chunk, an Alloc at 1500 ns on tid 4242 with stack 7:
// 04 dc 0b  05 92 21  10 07. The Time and Thread records are published
// together with their event.
uint8_t* RecordWriter::Prefix(uint8_t* p, RecordType type, const EventPrefix& e) {
  p = TimeAndThread(p, e);
  *p++ = static_cast<uint8_t>(type);
  return Varint(p, e.stack);
}

// In a thread chunk: the first event's seq goes in the chunk's header, and
// a gap pair in the gap area for an event whose seq does not follow the
// last one's (format.h). Nothing among the records.
void RecordWriter::Sequence(uint64_t seq) {
  if (!thread_chunks_) return;
  if (!chunk_has_seq_) {
    PutLE(chunk_ + format::kChunkPrefixSize + 8, seq, 8);
    chunk_has_seq_ = true;
  } else if (seq == last_seq_ + 1) {
    ++events_since_gap_;
  } else {
    PushGap(events_since_gap_, seq - last_seq_ - 1);
    events_since_gap_ = 0;
  }
  last_seq_ = seq;
}

// The pair goes before the ones already in the gap area, its bytes last to
// first, so that a reader going backwards from the chunk's end reads each
// varint in its own order. Published by the record's Commit.
void RecordWriter::PushGap(uint64_t skip, uint64_t gap) {
  uint8_t pair[kMaxGapPair];
  uint8_t* end = Varint(Varint(pair, skip), gap);
  uint8_t* at = chunk_ + capacity_ - gap_bytes_;
  for (const uint8_t* b = pair; b < end; ++b) *--at = *b;
  gap_bytes_ += static_cast<size_t>(end - pair);
}

uint8_t* RecordWriter::TimeAndThread(uint8_t* p, const EventPrefix& e) {
  Sequence(e.seq);
  if (!chunk_has_event_ || e.time_ns > last_time_) {
    *p++ = static_cast<uint8_t>(RecordType::kTime);
    p = Varint(p, e.time_ns - last_time_);
    last_time_ = e.time_ns;
    ++pending_records_;
  }
  if (!chunk_has_event_ || e.tid != last_tid_) {
    *p++ = static_cast<uint8_t>(RecordType::kThread);
    p = Varint(p, e.tid);
    last_tid_ = e.tid;
    ++pending_records_;
  }
  chunk_has_event_ = true;
  return p;
}


// Addresses against the thread's previous address in the chunk, or against
// its 16 MiB base when far from it (format.h, kAddressBase).
uint8_t* RecordWriter::Address(uint8_t* p, uint64_t address) {
  AddressSlot& slot = last_address_[last_tid_ % format::kAddressSlots];
  if (slot.tid != last_tid_) slot = {last_tid_, 0};
  uint64_t near = ZigZag(static_cast<int64_t>(address - slot.address));
  if (near < format::kNearAddress) {
    p = Varint(p, near << 1);
  } else {
    uint64_t base = slot.address & ~(format::kAddressBase - 1);
    p = Varint(p, ZigZag(static_cast<int64_t>(address - base)) << 1 | 1);
  }
  slot.address = address;
  return p;
}

void RecordWriter::ModuleMap(uint64_t generation, uint64_t seq) {
  uint8_t* p = Reserve(1 + kMaxVarintBytes);
  Sequence(seq);
  *p++ = static_cast<uint8_t>(RecordType::kModuleMap);
  Commit(Varint(p, generation), false);
}

void RecordWriter::Module(uint64_t load_bias, const ModuleSegment* segments,
                          int count, const char* path, const char* build_id) {
  if (count > kMaxModuleSegments) count = kMaxModuleSegments;
  uint8_t* p = Reserve(1 + (2 + 2 * kMaxModuleSegments) * kMaxVarintBytes +
                       2 * (kMaxVarintBytes + format::kMaxString));
  *p++ = static_cast<uint8_t>(RecordType::kModule);
  p = Varint(p, load_bias);
  p = Varint(p, static_cast<uint64_t>(count));
  for (int i = 0; i < count; ++i) {
    p = Varint(p, segments[i].start);
    p = Varint(p, segments[i].length);
  }
  p = String(p, path);
  Commit(String(p, build_id), false);
}

uint64_t RecordWriter::StackNode(uint64_t parent, uint64_t ip) {
  uint8_t* p = Reserve(1 + 2 * kMaxVarintBytes);
  *p++ = static_cast<uint8_t>(RecordType::kStackNode);
  p = Varint(p, parent);
  Commit(Varint(p, ip), false);
  return ++stack_nodes_;
}

void RecordWriter::StackNodeAt(uint64_t id, uint64_t parent, uint64_t ip) {
  if (!thread_chunks_) {
    StackNode(parent, ip);
    return;
  }
  uint8_t* p = Reserve(1 + 3 * kMaxVarintBytes);
  *p++ = static_cast<uint8_t>(RecordType::kStackNodeAt);
  p = Varint(p, id);
  p = Varint(p, parent);
  Commit(Varint(p, ip), false);
  ++stack_nodes_;
}

void RecordWriter::AllocSmall(const EventPrefix& prefix, uint64_t address, uint64_t requested,
                              uint64_t usable) {
  uint8_t* p = Prefix(Reserve(kEventMax), RecordType::kAllocSmall, prefix);
  p = Address(p, address);
  p = Varint(p, requested);
  Commit(Varint(p, ZigZag(static_cast<int64_t>(usable - requested))), true);
}

void RecordWriter::FreeSmall(const EventPrefix& prefix, uint64_t address) {
  uint8_t* p = TimeAndThread(Reserve(kEventMax), prefix);
  *p++ = static_cast<uint8_t>(RecordType::kFreeSmall);
  Commit(Address(p, address), true);
}

void RecordWriter::Alloc(const AllocEvent& e) {
  if (e.kind == format::AllocKind::kMalloc && !e.alignment && !e.mapped_bytes && !e.flags &&
      NoSyscalls(e.syscalls)) {
    AllocSmall(e.prefix, e.address, e.requested, e.usable);
    return;
  }
  uint8_t* p = Prefix(Reserve(kEventMax), RecordType::kAlloc, e.prefix);
  p = Varint(p, static_cast<uint64_t>(e.kind));
  p = Address(p, e.address);
  p = Varint(p, e.requested);
  p = Varint(p, ZigZag(static_cast<int64_t>(e.usable - e.requested)));
  p = Varint(p, e.alignment);
  p = Varint(p, e.mapped_bytes);
  p = Varint(p, e.flags);
  Commit(Syscalls(p, e.syscalls), true);
}

void RecordWriter::Free(const FreeEvent& e) {
  if (e.kind == format::FreeKind::kFree && !e.prefix.stack && !e.mapped_bytes && !e.flags &&
      NoSyscalls(e.syscalls)) {
    FreeSmall(e.prefix, e.address);
    return;
  }
  uint8_t* p = Prefix(Reserve(kEventMax), RecordType::kFree, e.prefix);
  p = Varint(p, static_cast<uint64_t>(e.kind));
  p = Address(p, e.address);
  p = Varint(p, e.mapped_bytes);
  p = Varint(p, e.flags);
  Commit(Syscalls(p, e.syscalls), true);
}

void RecordWriter::Mmap(const MmapEvent& e) {
  uint8_t* p = Prefix(Reserve(kEventMax), RecordType::kMmap, e.prefix);
  p = Address(p, e.address);
  p = Varint(p, e.length);
  p = Varint(p, e.prot);
  p = Varint(p, e.map_flags);
  p = Varint(p, ZigZag(e.fd));
  p = Varint(p, e.offset);
  p = Varint(p, e.flags);
  Commit(Syscalls(p, e.syscalls), true);
}

void RecordWriter::Munmap(const MunmapEvent& e) {
  uint8_t* p = Prefix(Reserve(kEventMax), RecordType::kMunmap, e.prefix);
  p = Address(p, e.address);
  p = Varint(p, e.length);
  p = Varint(p, e.flags);
  p = Varint(p, e.resident_pages);
  p = Varint(p, e.used_bytes);
  Commit(Syscalls(p, e.syscalls), true);
}

void RecordWriter::Mremap(const MremapEvent& e) {
  uint8_t* p = Prefix(Reserve(kEventMax), RecordType::kMremap, e.prefix);
  p = Address(p, e.old_address);
  p = Varint(p, e.old_length);
  p = Varint(p, e.new_length);
  p = Varint(p, e.mremap_flags);
  p = Varint(p, ZigZag(static_cast<int64_t>(e.new_address - e.old_address)));
  p = Varint(p, e.flags);
  Commit(Syscalls(p, e.syscalls), true);
}

void RecordWriter::Brk(const BrkEvent& e) {
  uint8_t* p = Prefix(Reserve(kEventMax), RecordType::kBrk, e.prefix);
  p = Varint(p, static_cast<uint64_t>(e.kind));
  p = Varint(p, e.old_break);
  p = Varint(p, e.new_break);
  p = Varint(p, ZigZag(e.argument));
  p = Varint(p, e.flags);
  Commit(Syscalls(p, e.syscalls), true);
}

void RecordWriter::MemoryCall(const MemoryCallEvent& e) {
  uint8_t* p = Prefix(Reserve(kEventMax), RecordType::kMemoryCall, e.prefix);
  p = Varint(p, static_cast<uint64_t>(e.kind));
  p = Address(p, e.address);
  p = Varint(p, e.length);
  p = Varint(p, e.argument);
  p = Varint(p, e.flags);
  Commit(Syscalls(p, e.syscalls), true);
}

void RecordWriter::Lost(uint64_t events) {
  uint8_t* p = Reserve(1 + kMaxVarintBytes);
  *p++ = static_cast<uint8_t>(RecordType::kLost);
  Commit(Varint(p, events), false);
}

void RecordWriter::StacksCut(uint64_t stacks) {
  uint8_t* p = Reserve(1 + kMaxVarintBytes);
  *p++ = static_cast<uint8_t>(RecordType::kStacksCut);
  Commit(Varint(p, stacks), false);
}

void RecordWriter::End(format::EndReason reason, int64_t status,
                       const SyscallCounts& shim_syscalls,
                       const SyscallCounts& observed_syscalls,
                       const SyscallCounts& before_start_syscalls) {
  uint8_t* p = Reserve(1 + (15 + 3 * format::kSyscallKinds) * kMaxVarintBytes);
  *p++ = static_cast<uint8_t>(RecordType::kEnd);
  p = Varint(p, static_cast<uint64_t>(reason));
  p = Varint(p, ZigZag(status));
  p = Varint(p, records_);
  p = Varint(p, events_);
  p = Varint(p, stack_nodes_);
  p = Varint(p, chunks_lost_);
  p = Varint(p, bytes_lost_);
  p = Syscalls(p, shim_syscalls);
  p = Syscalls(p, observed_syscalls);
  p = Syscalls(p, before_start_syscalls);
  p = Varint(p, started_ns_);
  p = Varint(p, ended_ns_);
  // Not Commit(): the End record's counts are of the records before it, and
  // an exec that fails takes the End back without disturbing them.
  used_ = static_cast<size_t>(p - chunk_);
  PutLE(chunk_, used_ - format::kChunkPrefixSize, 4);
  Flush(format::kChunkEnd);
}

}  // namespace pagewaste
