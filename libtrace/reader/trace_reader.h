// Streaming reader for trace files (format.h). It holds one chunk at a time,
// so its memory does not grow with the number of events; what grows is up to
// the visitor (live allocations, unique stacks).
//
// The byte source is injectable: the CLI reads files, tests and fuzzers feed
// memory.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstdint>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "format/events.h"
#include "format/format.h"
#include "symbol_section.h"

struct ZSTD_DCtx_s;  // zstd.h

namespace pagewaste {

namespace trace_reader_internal {
struct Cursor;      // over one chunk's records
struct DeltaState;  // time, thread, addresses, seq: as the writer keeps them
}  // namespace trace_reader_internal

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads up to size bytes; returns the count (0 at end) or -1 on error,
  // with a message in *err.
  virtual ptrdiff_t Read(uint8_t* out, size_t size, std::string* err) = 0;
};

// Opens path for reading; nullptr with *err set if it cannot.
std::unique_ptr<ByteSource> OpenFileSource(const std::string& path,
                                           std::string* err);
std::unique_ptr<ByteSource> MemorySource(std::vector<uint8_t> bytes);

struct TraceHeader {
  uint16_t version = 0;
  uint16_t flags = 0;  // format::HeaderFlags
  ProcessIdentity process;
  std::string exe;
  std::vector<std::string> argv;
};

struct ModuleInfo {
  uint64_t generation = 0;
  uint64_t load_bias = 0;
  std::vector<ModuleSegment> segments;
  std::string path;
  std::string build_id;  // hex; empty when none, or not recorded (version 2)
};

class RecordVisitor {
 public:
  virtual ~RecordVisitor() = default;
  virtual void OnModuleMap(uint64_t /*generation*/) {}
  virtual void OnModule(const ModuleInfo& /*module*/) {}
  virtual void OnStackNode(uint64_t /*id*/, uint64_t /*parent*/,
                           uint64_t /*ip*/) {}
  virtual void OnAlloc(const AllocEvent&) {}
  virtual void OnFree(const FreeEvent&) {}
  virtual void OnMmap(const MmapEvent&) {}
  virtual void OnMunmap(const MunmapEvent&) {}
  virtual void OnMremap(const MremapEvent&) {}
  virtual void OnBrk(const BrkEvent&) {}
  virtual void OnMemoryCall(const MemoryCallEvent&) {}
  virtual void OnEnd(const EndEvent&) {}
  // The symbol section, after the End record (symbol_section.h).
  virtual void OnSymbolModule(const SymbolModule&) {}
  virtual void OnSymbolizedAddress(const SymbolizedAddress&) {}
  // After each chunk: bytes of the file consumed so far (for progress).
  virtual void OnChunk(uint64_t /*offset*/) {}
  // False for a visitor that wants the trace's structure only (modules,
  // stack nodes, the End record, symbols): events are then skipped over
  // without being decoded into fields or checked (but counted), and thread
  // chunks are not merged. Several times faster on a large trace.
  virtual bool WantsEvents() const { return true; }
};

enum class TraceStatus {
  kComplete,    // ended with an End record whose counts match
  kIncomplete,  // ended properly, but chunks or the symbol section are missing
  kTruncated,   // the data stops early (no End record, or a partial chunk)
  kCorrupt,     // undecodable data; everything before it was delivered
};

struct ReadResult {
  TraceStatus status = TraceStatus::kComplete;
  std::string message;  // why it is not complete; empty when it is
  uint64_t records = 0;
  uint64_t events = 0;
  uint64_t bytes = 0;  // bytes consumed, header included
  bool has_end = false;
  EndEvent end;
  // What an incomplete trace lacks: the events its End record counts that
  // are not here (in chunks the producer could not write), and its symbol
  // section when the header says it has one.
  uint64_t events_lost = 0;
  bool symbols_missing = false;
  // Of those, the events the producer saw but could not record (Lost
  // records: the bpf backend's ring buffer was full).
  uint64_t events_dropped = 0;
  // Stacks the producer cut at its depth limit (StacksCut records).
  uint64_t stacks_cut = 0;
};

class TraceReader {
 public:
  explicit TraceReader(std::unique_ptr<ByteSource> source);
  ~TraceReader();
  TraceReader(const TraceReader&) = delete;
  TraceReader& operator=(const TraceReader&) = delete;

  // Reads and checks the header. False with *err for anything that is not a
  // readable trace of a version this build understands (empty file, wrong
  // magic, newer version, short header).
  bool ReadHeader(TraceHeader* header, std::string* err);

  // Delivers every record to visitor, in file order, but for the events of
  // thread chunks (format.h), which come in the order of their sequence
  // numbers, and their stack nodes, which come with the next event of
  // their chunk. Call after ReadHeader.
  ReadResult ReadRecords(RecordVisitor* visitor);

  // Bytes consumed so far: after ReadHeader, the header's length.
  uint64_t offset() const { return offset_; }

 private:
  // The status of a trace read to its end, from what was read.
  void Conclude(ReadResult* result) const;
  // Fills exactly size bytes; returns the count actually read.
  size_t ReadFully(uint8_t* out, size_t size, std::string* err);
  // Each returns whether reading goes on; on an error it sets the result's
  // status and message.
  bool PlainChunk(const uint8_t* payload, uint32_t size, uint64_t offset,
                  RecordVisitor* visitor, ReadResult* result);
  bool CompressedChunk(uint64_t offset, RecordVisitor* visitor, ReadResult* result);
  bool SymbolChunk(uint64_t offset, RecordVisitor* visitor, ReadResult* result);
  // Expands chunk_ (u32 size, zstd frame) into expanded_; false with *why.
  bool Expand(std::string* why);
  bool DecodeChunk(const uint8_t* p, const uint8_t* end, RecordVisitor* visitor,
                   ReadResult* result);
  // One record at the cursor; false with result->message if it is bad.
  bool DecodeRecord(trace_reader_internal::Cursor* c, trace_reader_internal::DeltaState* d,
                    RecordVisitor* visitor, ReadResult* result);
  // A record that is not an event (modules, stack nodes, time, thread, the
  // End record...); false for a type there is none of, or with
  // result->message for one that is bad.
  bool DecodeStructure(format::RecordType type, trace_reader_internal::Cursor* c,
                       trace_reader_internal::DeltaState* d, RecordVisitor* visitor,
                       ReadResult* result);
  bool DecodeModule(trace_reader_internal::Cursor* c, RecordVisitor* visitor, ReadResult* result);
  bool StackNodeAt(uint64_t id, uint64_t parent, uint64_t ip, RecordVisitor* visitor,
                   ReadResult* result);
  // A thread chunk's records in their own order, for a visitor that wants
  // no events.
  bool ThreadChunkStructure(const uint8_t* records, const uint8_t* end, RecordVisitor* visitor,
                            ReadResult* result);

  // Thread chunks: each is kept, decoded as far as its next event, until
  // every event before that one has been delivered.
  struct ThreadStream;
  struct StreamLater {
    bool operator()(const std::unique_ptr<ThreadStream>& a,
                    const std::unique_ptr<ThreadStream>& b) const;
  };
  bool ThreadChunk(const uint8_t* payload, uint32_t size, uint64_t offset,
                   RecordVisitor* visitor, ReadResult* result);
  bool Advance(ThreadStream* stream, RecordVisitor* visitor, ReadResult* result);
  // Delivers, in seq order, every pending event whose seq is below `below`.
  bool Drain(uint64_t below, RecordVisitor* visitor, ReadResult* result);
  // Drops the last of pending_ (a stream all of whose events are delivered).
  void Release();

  // A chunk's bytes, one chunk after another: Resize neither zeroes what it
  // adds nor gives memory back (a vector's resize zeroed the part of each
  // chunk longer than the one before it, and cost the replay 17%).
  class ChunkBuffer {
   public:
    ChunkBuffer() = default;
    ChunkBuffer(const ChunkBuffer&) = delete;
    ChunkBuffer& operator=(const ChunkBuffer&) = delete;
    ~ChunkBuffer() { std::free(bytes_); }
    // Room for n bytes, whose contents are left undefined. Grown with
    // realloc, which moves a large block's pages (mremap) instead of
    // touching new ones.
    void Resize(size_t n) {
      if (n > capacity_) {
        void* grown = std::realloc(bytes_, n);
        if (!grown) throw std::bad_alloc();
        bytes_ = static_cast<uint8_t*>(grown);
        capacity_ = n;
      }
      size_ = n;
    }
    uint8_t* data() { return bytes_; }
    const uint8_t* data() const { return bytes_; }
    size_t size() const { return size_; }

   private:
    uint8_t* bytes_ = nullptr;
    size_t size_ = 0;
    size_t capacity_ = 0;
  };

  std::unique_ptr<ByteSource> source_;
  ChunkBuffer chunk_;
  ChunkBuffer expanded_;  // a compressed chunk's plain chunks
  // Decoded into in place: building a fresh zeroed event per record cost
  // the replay more than decoding it. `dirty`: the event's syscall counts
  // may be non-zero from an earlier record.
  template <typename Event>
  struct Reused {
    Event event;
    bool dirty = false;
  };
  struct {
    Reused<AllocEvent> alloc;
    Reused<FreeEvent> free;
    Reused<MmapEvent> mmap;
    Reused<MunmapEvent> munmap;
    Reused<MremapEvent> mremap;
    Reused<BrkEvent> brk;
    Reused<MemoryCallEvent> memory_call;
  } events_;
  ::ZSTD_DCtx_s* zstd_ = nullptr;
  uint64_t offset_ = 0;
  uint64_t next_stack_id_ = 1;
  // Of each StackNode so far, by id - 1: 0 not yet, kWaitingForParent an
  // orphan's.
  std::vector<uint16_t> stack_depth_;
  static constexpr uint16_t kWaitingForParent = 0xffff;
  // StackNodeAt records whose parent has not come yet: parent -> (id, ip).
  std::multimap<uint64_t, std::pair<uint64_t, uint64_t>> orphans_;
  // A heap (StreamLater) of the thread chunks with events left.
  std::vector<std::unique_ptr<ThreadStream>> pending_;
  uint64_t pending_bytes_ = 0;  // held by pending_ (records and gap areas)
  uint64_t module_generation_ = 0;
  std::unordered_set<std::string> modules_;  // "path@bias" of each distinct module
  uint16_t version_ = format::kVersion;  // the header's
  uint16_t header_flags_ = 0;
  bool symbols_seen_ = false;
  // The bytes of names the symbol section's frames hold so far: its chunks
  // together are held to format::kMaxSymbolNameBytes.
  uint64_t symbol_name_bytes_ = 0;
  bool wants_events_ = true;              // the visitor's WantsEvents()
};

const char* TraceStatusName(TraceStatus status);

}  // namespace pagewaste
