// Encodes trace records (format.h) into chunks for a sink. Allocation-free
// and lock-free by itself: the caller serializes access (the shim holds its
// writer lock; tests own their writer).
//
// Records are encoded in place and published by rewriting the chunk's length
// prefix once the record is whole. A reader of the chunk (the trace file,
// when the sink maps it; a fatal-signal handler's flush otherwise) therefore
// only ever sees whole records.
#pragma once

#include <cstddef>
#include <cstdint>

#include "format/events.h"
#include "format/format.h"

namespace pagewaste {

// Where chunks go. A sink may hand the writer memory that is already part of
// the trace file (a shared mapping), so that every record is on its way to
// the file the moment it is committed; or it may leave the writer to fill its
// own buffer and take the finished chunk in FinishChunk.
class ChunkSink {
 public:
  // Memory for the next chunk, capacity bytes, or nullptr to use the
  // writer's own buffer.
  virtual uint8_t* NextChunk(size_t capacity) = 0;
  // The chunk at data is complete: size bytes, length prefix included.
  // Returns false if it could not be stored; the writer counts it as lost.
  virtual bool FinishChunk(const uint8_t* data, size_t size) = 0;
  // For a writer of thread chunks: the low_seq of the chunk NextChunk just
  // handed out (format.h, kThreadChunkHeader).
  virtual uint64_t LowSeq() { return 0; }

 protected:
  ~ChunkSink() = default;
};

struct HeaderInfo {
  ProcessIdentity process;
  uint16_t flags = 0;  // format::HeaderFlags
  const char* exe = "";
  int argc = 0;
  const char* const* argv = nullptr;
};

// Encodes the file header into out (capacity cap); returns the size, or 0 if
// it does not fit. Strings longer than format::kMaxString are cut.
size_t EncodeHeader(const HeaderInfo& info, uint8_t* out, size_t cap);

// A whole thread chunk (prefix included, `size` bytes) without the unused
// space between its records and its gap area (format.h): the gap area moved
// up to follow the records and the payload length cut to match, in place.
// Returns the chunk's new size.
size_t CompactThreadChunk(uint8_t* chunk, size_t size);

class RecordWriter {
 public:
  // The buffer must hold at least kMinBuffer bytes; its size is the chunk
  // size. It is used when the sink offers no memory of its own.
  static constexpr size_t kMinBuffer = 2 * format::kMaxString + 1024;

  constexpr RecordWriter(uint8_t* buffer, size_t capacity, ChunkSink* sink)
      : own_buffer_(buffer), capacity_(capacity), sink_(sink) {}

  // Thread chunks (format.h, kChunkThread) instead of plain ones: one
  // thread's events, each with the seq of its prefix. Call before the first
  // record. The chunk's size is the buffer's: the writer reserves it whole.
  void UseThreadChunks() { thread_chunks_ = true; }
  // The size of the chunks to come; a sink may call it from NextChunk to
  // size the one it hands out (at most the buffer's size).
  void SetChunkCapacity(size_t capacity) { capacity_ = capacity; }

  // seq: the record's place in the process's order (thread chunks only).
  void ModuleMap(uint64_t generation, uint64_t seq = 0);
  void Module(uint64_t load_bias, const ModuleSegment* segments, int count,
              const char* path, const char* build_id);
  // Returns the new node's id: nodes are numbered in the order they are
  // written (plain chunks only).
  uint64_t StackNode(uint64_t parent, uint64_t ip);
  // A node whose id the caller assigned (a stack table several writers
  // share): a StackNodeAt record in thread chunks; in plain chunks a
  // StackNode, and the caller writes ids in order.
  void StackNodeAt(uint64_t id, uint64_t parent, uint64_t ip);
  void Alloc(const AllocEvent& e);
  void Free(const FreeEvent& e);
  // The compact forms (format.h) for callers that know they apply: a plain
  // malloc (no alignment, own mapping, flags or syscalls) and a plain free
  // (kind free, no stack, own mapping, flags or syscalls). Alloc and Free
  // pick them by themselves.
  void AllocSmall(const EventPrefix& prefix, uint64_t address, uint64_t requested,
                  uint64_t usable);
  void FreeSmall(const EventPrefix& prefix, uint64_t address);
  void Mmap(const MmapEvent& e);
  void Munmap(const MunmapEvent& e);
  void Mremap(const MremapEvent& e);
  void Brk(const BrkEvent& e);
  void MemoryCall(const MemoryCallEvent& e);
  // Writes the End record (filling in the writer's own counters) and flushes.
  // Events the producer knows it could not record (format.h kLost).
  void Lost(uint64_t events);
  // Stacks the producer cut at its depth limit (format.h kStacksCut).
  void StacksCut(uint64_t stacks);
  void End(format::EndReason reason, int64_t status, const SyscallCounts& shim_syscalls,
           const SyscallCounts& observed_syscalls = {},
           const SyscallCounts& before_start_syscalls = {});
  // The process's lifetime for the End record, on the fine clock (events.h
  // EndEvent); unset, the record says it is not known.
  void SetLifetime(uint64_t started_ns, uint64_t ended_ns) {
    started_ns_ = started_ns;
    ended_ns_ = ended_ns;
  }

  // Continues the counts of a trace written by another writer, whose End
  // record this one is to write (pagewaste run ending the trace of a process
  // that could not).
  void ContinueCounts(uint64_t records, uint64_t events, uint64_t stack_nodes) {
    records_ = records;
    events_ = events;
    stack_nodes_ = stack_nodes;
  }

  // Adds another writer's counts (records, events, nodes, losses) to this
  // one's, for the End record of a trace that several writers wrote; Mark
  // and Restore put them back as they were (an End taken back).
  void AddCounts(const RecordWriter& other) {
    records_ += other.records_;
    events_ += other.events_;
    stack_nodes_ += other.stack_nodes_;
    chunks_lost_ += other.chunks_lost_;
    bytes_lost_ += other.bytes_lost_;
  }
  struct Counts {
    uint64_t records, events, stack_nodes, chunks_lost, bytes_lost;
  };
  Counts Mark() const { return {records_, events_, stack_nodes_, chunks_lost_, bytes_lost_}; }
  void Restore(const Counts& c) {
    records_ = c.records;
    events_ = c.events;
    stack_nodes_ = c.stack_nodes;
    chunks_lost_ = c.chunks_lost;
    bytes_lost_ = c.bytes_lost;
  }

  // Hands the current chunk to the sink, if it holds any record (a thread
  // chunk, reserved whole, always).
  void Flush();
  // Forgets the current chunk without finishing it (a forked child drops
  // its parent's chunk) and restarts the counters.
  void Reset();

  uint64_t records() const { return records_; }
  uint64_t events() const { return events_; }
  uint64_t stack_nodes() const { return stack_nodes_; }
  uint64_t chunks_lost() const { return chunks_lost_; }
  uint64_t bytes_lost() const { return bytes_lost_; }

 private:
  // Returns room for a record of at most max_size bytes, flushing first if
  // the chunk is too full. The record is published by Commit().
  uint8_t* Reserve(size_t max_size);
  void Commit(uint8_t* end, bool is_event);
  void Flush(uint32_t extra_flags);
  uint8_t* Prefix(uint8_t* p, format::RecordType type, const EventPrefix& e);
  uint8_t* TimeAndThread(uint8_t* p, const EventPrefix& e);
  uint8_t* Address(uint8_t* p, uint64_t address);
  // Numbers the record about to be written (thread chunks; format.h).
  void Sequence(uint64_t seq);
  void PushGap(uint64_t skip, uint64_t gap);
  size_t HeaderSize() const {
    return format::kChunkPrefixSize + (thread_chunks_ ? format::kThreadChunkHeader : 0);
  }

  uint8_t* own_buffer_;
  size_t capacity_;
  ChunkSink* sink_;
  uint8_t* chunk_ = nullptr;  // the current chunk; null until the next record
  size_t used_ = 0;           // committed bytes, including the 4-byte prefix
  bool chunk_has_event_ = false;
  bool thread_chunks_ = false;
  bool chunk_has_seq_ = false;
  uint64_t last_seq_ = 0;
  size_t gap_bytes_ = 0;            // the thread chunk's gap area (format.h)
  uint64_t events_since_gap_ = 0;  // events numbered one after the other since
  uint32_t pending_records_ = 0;  // Time/Thread records before the event
  uint32_t last_tid_ = 0;
  uint64_t last_time_ = 0;
  struct AddressSlot {
    uint32_t tid = 0;
    uint64_t address = 0;
  };
  AddressSlot last_address_[format::kAddressSlots] = {};
  uint64_t records_ = 0;
  uint64_t events_ = 0;
  uint64_t stack_nodes_ = 0;
  uint64_t chunks_lost_ = 0;
  uint64_t bytes_lost_ = 0;
  uint64_t started_ns_ = 0;  // SetLifetime
  uint64_t ended_ns_ = 0;
};

}  // namespace pagewaste
