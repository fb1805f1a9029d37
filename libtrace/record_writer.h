// Encodes trace records (format.h) into chunks and hands whole chunks to a
// sink. Allocation-free and lock-free by itself: the caller serializes
// access (the shim holds its writer lock; tests own their writer).
//
// Records are encoded in place in the caller's buffer and become visible to
// Flush() only once complete, so a fatal-signal handler that flushes in the
// middle of an encode writes only whole records.
#pragma once

#include <cstddef>
#include <cstdint>

#include "events.h"
#include "format.h"

namespace pagewaste {

// Receives finished chunks: 4-byte length prefix included. Returns false if
// the chunk could not be stored; the writer counts it as lost.
class ChunkSink {
 public:
  virtual bool WriteChunk(const uint8_t* data, size_t size) = 0;

 protected:
  ~ChunkSink() = default;
};

struct HeaderInfo {
  uint32_t page_size = 0;
  uint32_t pid = 0;
  uint32_t ppid = 0;
  uint64_t session_id = 0;
  uint64_t start_realtime_ns = 0;
  uint64_t start_monotonic_ns = 0;
  format::Backend backend = format::Backend::kPreload;
  const char* exe = "";
  int argc = 0;
  const char* const* argv = nullptr;
};

// Encodes the file header into out (capacity cap); returns the size, or 0 if
// it does not fit. Strings longer than format::kMaxString are cut.
size_t EncodeHeader(const HeaderInfo& info, uint8_t* out, size_t cap);

class RecordWriter {
 public:
  // The buffer must hold at least kMinBuffer bytes; it is the chunk size.
  static constexpr size_t kMinBuffer = 2 * format::kMaxString + 1024;

  constexpr RecordWriter(uint8_t* buffer, size_t capacity, ChunkSink* sink)
      : buffer_(buffer),
        capacity_(capacity),
        sink_(sink),
        used_(format::kChunkPrefixSize) {}

  void ModuleMap(uint64_t generation);
  void Module(uint64_t load_bias, const ModuleSegment* segments, int count,
              const char* path);
  // Returns the new node's id.
  uint64_t StackNode(uint64_t parent, uint64_t ip);
  void Alloc(const AllocEvent& e);
  void Free(const FreeEvent& e);
  void Mmap(const MmapEvent& e);
  void Munmap(const MunmapEvent& e);
  void Mremap(const MremapEvent& e);
  void Brk(const BrkEvent& e);
  // Writes the End record (filling in the writer's own counters) and flushes.
  void End(format::EndReason reason, int64_t status);

  // Hands the current chunk to the sink, if it holds any record.
  void Flush();
  // Forgets the current chunk without writing it (a forked child drops its
  // parent's unwritten records) and restarts the counters.
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
  uint8_t* Prefix(uint8_t* p, format::RecordType type, const EventPrefix& e);
  uint8_t* Address(uint8_t* p, uint64_t address);

  uint8_t* buffer_;
  size_t capacity_;
  ChunkSink* sink_;
  size_t used_;  // committed bytes, including the 4-byte chunk prefix
  uint64_t last_time_ = 0;
  uint64_t last_address_ = 0;
  uint64_t records_ = 0;
  uint64_t events_ = 0;
  uint64_t stack_nodes_ = 0;
  uint64_t chunks_lost_ = 0;
  uint64_t bytes_lost_ = 0;
};

}  // namespace pagewaste
