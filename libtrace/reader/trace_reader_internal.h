// The reader's decoding state and field readers, shared by its files
// (trace_reader.cpp: chunks; record_decoding.cpp: records; thread_merge.cpp:
// thread chunks merged back into order). Internal to the reader: decoding
// mirrors record_writer.cpp field by field, and format.h is the reference
// for both.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "trace_reader.h"
#include "format/varint.h"

namespace pagewaste {
namespace trace_reader_internal {

using format::RecordType;

// Cursor over one chunk's payload. Any read past the end sets ok = false and
// yields zeros, so decoders read straight through and check once.
struct Cursor {
  const uint8_t* p;
  const uint8_t* end;
  bool ok = true;

  uint64_t U() {
    if (p < end && *p < 0x80) return *p++;  // most fields are one byte
    uint64_t v = 0;
    if (ok && !DecodeVarint(&p, end, &v)) ok = false;
    return ok ? v : 0;
  }
  int64_t S() { return UnZigZag(U()); }
  uint32_t U32() {
    uint64_t v = U();
    if (v > UINT32_MAX) ok = false;
    return static_cast<uint32_t>(v);
  }
  std::string Str() {
    uint64_t n = U();
    if (!ok || n > format::kMaxString || n > static_cast<uint64_t>(end - p)) {
      ok = false;
      return {};
    }
    std::string s(reinterpret_cast<const char*>(p), n);
    p += n;
    return s;
  }
};

struct DeltaState {
  uint64_t time = 0;
  uint32_t tid = 0;
  uint64_t seq = 0;           // of the event being decoded (thread chunks)
  bool address_bases = true;  // format.h kAddressBase (version 4 on)
  struct {
    uint32_t tid = 0;
    uint64_t address = 0;
  } addresses[format::kAddressSlots];  // by tid, as the writer keeps them
};

inline EventPrefix ReadPrefix(Cursor* c, DeltaState* d) {
  EventPrefix e;
  e.time_ns = d->time;
  e.tid = d->tid;
  e.stack = c->U();
  e.seq = d->seq;
  return e;
}

inline uint64_t ReadAddress(Cursor* c, DeltaState* d) {
  auto& slot = d->addresses[d->tid % format::kAddressSlots];
  if (slot.tid != d->tid) slot = {d->tid, 0};
  if (!d->address_bases) {  // versions 2 and 3
    slot.address += static_cast<uint64_t>(c->S());
    return slot.address;
  }
  uint64_t v = c->U();
  uint64_t from = (v & 1) ? slot.address & ~(format::kAddressBase - 1) : slot.address;
  slot.address = from + static_cast<uint64_t>(UnZigZag(v >> 1));
  return slot.address;
}

inline void ClearSyscalls(SyscallCounts* s, bool* dirty) {
  for (uint32_t& n : s->count) n = 0;
  s->ns = 0;
  *dirty = false;
}

// Fills every field of *s. *dirty says whether *s may hold counts from an
// earlier record: most records have none, and then nothing is written (a
// visitor reading counts just stored would wait on store forwarding).
inline void ReadSyscalls(Cursor* c, SyscallCounts* s, bool* dirty) {
  uint64_t mask = c->U();  // 0 for most events
  if (!mask && !*dirty) return;
  for (uint32_t& n : s->count) n = 0;
  s->ns = 0;
  *dirty = mask != 0;
  if (!mask) return;
  if (mask >> format::kSyscallKinds) c->ok = false;
  for (int i = 0; i < format::kSyscallKinds && c->ok; ++i)
    if (mask & (1u << i)) s->count[i] = c->U32();
  s->ns = c->U();
}

// The records that hold a place in a process's order (thread chunks number
// them): events and ModuleMap.
inline bool TakesSeq(uint8_t type) {
  switch (static_cast<RecordType>(type)) {
    case RecordType::kModuleMap:
    case RecordType::kAlloc:
    case RecordType::kFree:
    case RecordType::kMmap:
    case RecordType::kMunmap:
    case RecordType::kMremap:
    case RecordType::kBrk:
    case RecordType::kMemoryCall:
    case RecordType::kAllocSmall:
    case RecordType::kFreeSmall:
      return true;
    default:
      return false;
  }
}

// Steps over one varint (not past end).
inline void SkipVarint(Cursor* c) {
  while (c->p < c->end && (*c->p & 0x80)) ++c->p;
  if (c->p < c->end)
    ++c->p;
  else
    c->ok = false;
}

inline void SkipVarints(Cursor* c, int n) {
  for (int i = 0; i < n; ++i) SkipVarint(c);
}

// The syscalls field: a mask, a count per set bit, and the time if any.
inline void SkipSyscalls(Cursor* c) {
  uint64_t mask = c->U();
  if (!mask) return;
  SkipVarints(c, __builtin_popcountll(mask) + 1);
}

// Steps over an event's fields (the type byte read); false if `type` is
// not an event's.
inline bool SkipEvent(RecordType type, Cursor* c) {
  // Fields before the syscalls, by type (format.h); -1: no syscalls field.
  int fields;
  bool syscalls = true;
  switch (type) {
    case RecordType::kAlloc:
      fields = 8;
      break;
    case RecordType::kFree:
      fields = 5;
      break;
    case RecordType::kMmap:
      fields = 8;
      break;
    case RecordType::kMunmap:
      fields = 6;
      break;
    case RecordType::kMremap:
      fields = 7;
      break;
    case RecordType::kBrk:
      fields = 6;
      break;
    case RecordType::kMemoryCall:
      fields = 6;
      break;
    case RecordType::kAllocSmall:
      fields = 4, syscalls = false;
      break;
    case RecordType::kFreeSmall:
      fields = 1, syscalls = false;
      break;
    default:
      return false;
  }
  SkipVarints(c, fields);
  if (syscalls) SkipSyscalls(c);
  return true;
}

}  // namespace trace_reader_internal

// One thread chunk being merged: its records (copied: the chunk buffer is
// reused), where decoding stands, and the seq of the event it stands at.
struct TraceReader::ThreadStream {
  using Cursor = trace_reader_internal::Cursor;
  using DeltaState = trace_reader_internal::DeltaState;
  std::vector<uint8_t> bytes;
  Cursor c{nullptr, nullptr};
  DeltaState d;
  uint64_t offset = 0;  // the chunk's, for messages
  uint64_t first_seq = 0;
  uint64_t next_seq = 0;
  bool started = false;   // an event of it was seen
  bool at_event = false;  // c stands at an event whose seq is next_seq
  // The gap area (format.h), read backwards from gaps.end(): the next pair.
  std::vector<uint8_t> gaps;
  size_t gaps_left = 0;
  bool have_pair = false;
  uint64_t skip = 0;
  uint64_t gap = 0;

  // Reads one varint of the gap area going backwards; false if it is cut.
  bool GapVarint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64 && gaps_left; shift += 7) {
      uint8_t b = gaps[--gaps_left];
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  }
  // The next (skip, gap) pair, if any; false if the area is damaged.
  bool NextPair() {
    have_pair = gaps_left != 0;
    return !have_pair || (GapVarint(&skip) && GapVarint(&gap));
  }
  // The seq of the event after the one numbered `last`.
  bool Following(uint64_t last, uint64_t* seq) {
    if (have_pair && skip == 0) {
      *seq = last + 1 + gap;
      return NextPair();
    }
    if (have_pair) --skip;
    *seq = last + 1;
    return true;
  }
};

}  // namespace pagewaste
