// Decoding mirrors record_writer.cpp field by field; format.h is the
// reference for both.
#include "trace_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>

#include <zstd.h>

#include "little_endian.h"
#include "varint.h"

namespace pagewaste {
namespace trace_reader_internal {

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
  uint64_t seq = 0;  // of the event being decoded (thread chunks)
  bool address_bases = true;  // format.h kAddressBase (version 4 on)
  struct {
    uint32_t tid = 0;
    uint64_t address = 0;
  } addresses[format::kAddressSlots];  // by tid, as the writer keeps them
};

}  // namespace trace_reader_internal

namespace {

using format::RecordType;
using trace_reader_internal::Cursor;
using trace_reader_internal::DeltaState;

class FileSource : public ByteSource {
 public:
  explicit FileSource(int fd) : fd_(fd) {}
  ~FileSource() override { close(fd_); }
  ptrdiff_t Read(uint8_t* out, size_t size, std::string* err) override {
    for (;;) {
      ssize_t n = read(fd_, out, size);
      if (n >= 0) return n;
      if (errno == EINTR) continue;
      *err = strerror(errno);
      return -1;
    }
  }

 private:
  int fd_;
};

class BytesSource : public ByteSource {
 public:
  explicit BytesSource(std::vector<uint8_t> bytes) : bytes_(std::move(bytes)) {}
  ptrdiff_t Read(uint8_t* out, size_t size, std::string*) override {
    size_t n = std::min(size, bytes_.size() - pos_);
    if (n) memcpy(out, bytes_.data() + pos_, n);
    pos_ += n;
    return static_cast<ptrdiff_t>(n);
  }

 private:
  std::vector<uint8_t> bytes_;
  size_t pos_ = 0;
};

EventPrefix ReadPrefix(Cursor* c, DeltaState* d) {
  EventPrefix e;
  e.time_ns = d->time;
  e.tid = d->tid;
  e.stack = c->U();
  e.seq = d->seq;
  return e;
}

uint64_t ReadAddress(Cursor* c, DeltaState* d) {
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

void ClearSyscalls(SyscallCounts* s, bool* dirty) {
  for (uint32_t& n : s->count) n = 0;
  s->ns = 0;
  *dirty = false;
}

// Fills every field of *s. *dirty says whether *s may hold counts from an
// earlier record: most records have none, and then nothing is written (a
// visitor reading counts just stored would wait on store forwarding).
void ReadSyscalls(Cursor* c, SyscallCounts* s, bool* dirty) {
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

// A chunk header's size and flags, checked: false (and *message) if they
// cannot be a chunk's.
bool CheckChunkHeader(uint32_t size, uint32_t flags, uint32_t allowed_flags, uint64_t offset,
                      std::string* message) {
  bool thread = flags & format::kChunkThread;
  if (size != 0 && size <= format::kMaxChunkPayload && !(flags & ~allowed_flags) &&
      (!thread || (size >= format::kThreadChunkHeader && !(flags & format::kChunkEnd))))
    return true;
  *message = "bad chunk header (size " + std::to_string(size) + ", flags " +
             std::to_string(flags) + ") at byte " + std::to_string(offset);
  return false;
}

// The records that hold a place in a process's order (thread chunks number
// them): events and ModuleMap.
bool TakesSeq(uint8_t type) {
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

void SkipVarints(Cursor* c, int n) {
  for (int i = 0; i < n; ++i) SkipVarint(c);
}

// The syscalls field: a mask, a count per set bit, and the time if any.
void SkipSyscalls(Cursor* c) {
  uint64_t mask = c->U();
  if (!mask) return;
  SkipVarints(c, __builtin_popcountll(mask) + 1);
}

// Steps over an event's fields (the type byte read); false if `type` is
// not an event's.
bool SkipEvent(RecordType type, Cursor* c) {
  // Fields before the syscalls, by type (format.h); -1: no syscalls field.
  int fields;
  bool syscalls = true;
  switch (type) {
    case RecordType::kAlloc: fields = 8; break;
    case RecordType::kFree: fields = 5; break;
    case RecordType::kMmap: fields = 8; break;
    case RecordType::kMunmap: fields = 6; break;
    case RecordType::kMremap: fields = 7; break;
    case RecordType::kBrk: fields = 6; break;
    case RecordType::kMemoryCall: fields = 6; break;
    case RecordType::kAllocSmall: fields = 4, syscalls = false; break;
    case RecordType::kFreeSmall: fields = 1, syscalls = false; break;
    default: return false;
  }
  SkipVarints(c, fields);
  if (syscalls) SkipSyscalls(c);
  return true;
}

}  // namespace

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
  bool started = false;  // an event of it was seen
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

bool TraceReader::StreamLater::operator()(const std::unique_ptr<ThreadStream>& a,
                                          const std::unique_ptr<ThreadStream>& b) const {
  return a->next_seq > b->next_seq;
}

std::unique_ptr<ByteSource> OpenFileSource(const std::string& path,
                                           std::string* err) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *err = path + ": " + strerror(errno);
    return nullptr;
  }
  return std::make_unique<FileSource>(fd);
}

std::unique_ptr<ByteSource> MemorySource(std::vector<uint8_t> bytes) {
  return std::make_unique<BytesSource>(std::move(bytes));
}

const char* TraceStatusName(TraceStatus status) {
  switch (status) {
    case TraceStatus::kComplete: return "complete";
    case TraceStatus::kTruncated: return "truncated";
    case TraceStatus::kCorrupt: return "corrupt";
  }
  return "unknown";
}

TraceReader::TraceReader(std::unique_ptr<ByteSource> source)
    : source_(std::move(source)) {}

TraceReader::~TraceReader() { ZSTD_freeDCtx(zstd_); }

size_t TraceReader::ReadFully(uint8_t* out, size_t size, std::string* err) {
  size_t got = 0;
  while (got < size) {
    ptrdiff_t n = source_->Read(out + got, size - got, err);
    if (n < 0) return got;
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  offset_ += got;
  return got;
}

bool TraceReader::ReadHeader(TraceHeader* h, std::string* err) {
  uint8_t fixed[format::kFixedHeaderSize];
  std::string io_err;
  size_t got = ReadFully(fixed, sizeof fixed, &io_err);
  if (!io_err.empty()) {
    *err = "cannot read: " + io_err;
    return false;
  }
  if (got == 0) {
    *err = "empty file, not a pagewaste trace";
    return false;
  }
  if (got < sizeof format::kMagic ||
      memcmp(fixed, format::kMagic, sizeof format::kMagic) != 0) {
    *err = "not a pagewaste trace (bad magic)";
    return false;
  }
  if (got < sizeof fixed) {
    *err = "truncated header (" + std::to_string(got) + " of " +
           std::to_string(sizeof fixed) + " bytes)";
    return false;
  }
  h->version = static_cast<uint16_t>(GetLE(fixed + 8, 2));
  h->flags = static_cast<uint16_t>(GetLE(fixed + 10, 2));
  version_ = h->version;
  if (h->version < format::kOldestReadableVersion || h->version > format::kVersion) {
    *err = "trace format version " + std::to_string(h->version) +
           " is not supported (this build reads versions " +
           std::to_string(format::kOldestReadableVersion) + " to " +
           std::to_string(format::kVersion) + "); " +
           (h->version > format::kVersion ? "upgrade pagewaste"
                                          : "record the program again with this pagewaste");
    return false;
  }
  h->process.page_size = static_cast<uint32_t>(GetLE(fixed + 12, 4));
  h->process.pid = static_cast<uint32_t>(GetLE(fixed + 16, 4));
  h->process.ppid = static_cast<uint32_t>(GetLE(fixed + 20, 4));
  h->process.session_id = GetLE(fixed + 24, 8);
  h->process.start_realtime_ns = GetLE(fixed + 32, 8);
  h->process.start_monotonic_ns = GetLE(fixed + 40, 8);
  h->process.backend = static_cast<format::Backend>(GetLE(fixed + 48, 4));
  h->process.time_resolution_ns = static_cast<uint32_t>(GetLE(fixed + 52, 4));
  h->process.sample_interval_bytes = GetLE(fixed + 56, 8);
  // Pages are 4 KiB to 64 KiB on the machines Linux runs on; a header that
  // says otherwise is damaged (and a tiny "page" would break the what-if
  // models' arithmetic).
  if (h->process.page_size < format::kMinPageSize || h->process.page_size > format::kMaxPageSize ||
      (h->process.page_size & (h->process.page_size - 1))) {
    *err = "corrupt header: page size " + std::to_string(h->process.page_size);
    return false;
  }

  // Strings: read byte by byte; the header is small.
  auto read_varint = [&](uint64_t* v) {
    uint8_t bytes[kMaxVarintBytes];
    for (size_t i = 0; i < kMaxVarintBytes; ++i) {
      if (ReadFully(bytes + i, 1, &io_err) != 1) return false;
      if (!(bytes[i] & 0x80)) {
        const uint8_t* p = bytes;
        return DecodeVarint(&p, bytes + i + 1, v);
      }
    }
    return false;
  };
  auto read_string = [&](std::string* s) {
    uint64_t n;
    if (!read_varint(&n) || n > format::kMaxString) return false;
    s->resize(n);
    return ReadFully(reinterpret_cast<uint8_t*>(s->data()), n, &io_err) == n;
  };
  uint64_t argc = 0;
  if (!read_string(&h->exe) || !read_varint(&argc) || argc > 1u << 16) {
    *err = "truncated or corrupt header";
    return false;
  }
  h->argv.resize(argc);
  for (auto& arg : h->argv) {
    if (!read_string(&arg)) {
      *err = "truncated or corrupt header";
      return false;
    }
  }
  return true;
}

ReadResult TraceReader::ReadRecords(RecordVisitor* visitor) {
  ReadResult result;
  wants_events_ = visitor->WantsEvents();
  for (;;) {
    uint8_t prefix[format::kChunkPrefixSize];
    std::string io_err;
    uint64_t chunk_offset = offset_;
    size_t got = ReadFully(prefix, sizeof prefix, &io_err);
    if (got == 0 && io_err.empty()) break;
    if (got < sizeof prefix) {
      result.status = TraceStatus::kTruncated;
      result.message = io_err.empty() ? "ends inside a chunk header at byte " +
                                            std::to_string(chunk_offset)
                                      : "read error: " + io_err;
      break;
    }
    uint32_t size = static_cast<uint32_t>(GetLE(prefix, 4));
    uint32_t flags = static_cast<uint32_t>(GetLE(prefix + 4, 4));
    if (size == 0 && flags == 0) break;  // reserved space never used: the end
    if (!CheckChunkHeader(size, flags,
                          format::kChunkFinished | format::kChunkZstd | format::kChunkEnd |
                              format::kChunkSymbols | format::kChunkThread,
                          chunk_offset, &result.message)) {
      result.status = TraceStatus::kCorrupt;
      break;
    }
    chunk_.resize(size);
    got = ReadFully(chunk_.data(), size, &io_err);
    if (got < size) {
      result.status = TraceStatus::kTruncated;
      result.message = "ends inside a chunk at byte " +
                       std::to_string(offset_) + " (" + std::to_string(got) +
                       " of " + std::to_string(size) + " bytes)";
      break;
    }
    bool more = (flags & format::kChunkSymbols) ? SymbolChunk(chunk_offset, visitor, &result)
                : (flags & format::kChunkZstd) ? CompressedChunk(chunk_offset, visitor, &result)
                : (flags & format::kChunkThread)
                    ? ThreadChunk(chunk_.data(), size, chunk_offset, visitor, &result)
                    : PlainChunk(chunk_.data(), size, chunk_offset, visitor, &result) &&
                          (flags & format::kChunkFinished);
    if (result.status != TraceStatus::kComplete) break;
    visitor->OnChunk(offset_);
    // An unfinished chunk is the last one: what follows it is a record the
    // process was writing when it died, and reserved space.
    if (!more) break;
  }
  if (result.status == TraceStatus::kComplete || result.status == TraceStatus::kTruncated)
    Drain(UINT64_MAX, visitor, &result);
  result.bytes = offset_;
  if (result.status == TraceStatus::kComplete && !orphans_.empty()) {
    result.status = TraceStatus::kCorrupt;
    result.message = "a stack node whose parent is not in the trace";
  }
  if (result.status == TraceStatus::kComplete) {
    if (!result.has_end) {
      result.status = TraceStatus::kTruncated;
      result.message = "no end record: the process ended without closing its trace "
                       "(killed, or by a signal whose handler it had replaced); the " +
                       std::to_string(result.events) + " events before that are all here";
    } else if (result.end.chunks_lost == 0 &&
               result.end.records != result.records - 1) {
      result.status = TraceStatus::kCorrupt;
      result.message = "the end record counts " +
                       std::to_string(result.end.records) + " records, read " +
                       std::to_string(result.records - 1);
    }
  }
  return result;
}

bool TraceReader::PlainChunk(const uint8_t* payload, uint32_t size, uint64_t offset,
                             RecordVisitor* visitor, ReadResult* result) {
  if (result->has_end) {
    result->status = TraceStatus::kCorrupt;
    result->message = "data after the end record at byte " + std::to_string(offset);
    return false;
  }
  // A plain chunk after thread chunks (the End record's) follows all of
  // their events.
  if (!Drain(UINT64_MAX, visitor, result)) return false;
  if (!DecodeChunk(payload, payload + size, visitor, result)) {
    result->status = TraceStatus::kCorrupt;
    result->message += " in the chunk at byte " + std::to_string(offset);
    return false;
  }
  return true;
}

// The plain chunks a compressed one expands to, in order; offsets in
// messages are the compressed chunk's.
bool TraceReader::Expand(std::string* why) {
  if (chunk_.size() < 4) {
    *why = "no expanded size";
    return false;
  }
  uint64_t expanded_size = GetLE(chunk_.data(), 4);
  if (expanded_size == 0 || expanded_size > format::kMaxExpandedChunk) {
    *why = "expanded size " + std::to_string(expanded_size) + " out of range";
    return false;
  }
  expanded_.resize(expanded_size);
  if (!zstd_) zstd_ = ZSTD_createDCtx();
  size_t n = ZSTD_decompressDCtx(zstd_, expanded_.data(), expanded_.size(), chunk_.data() + 4,
                                 chunk_.size() - 4);
  if (ZSTD_isError(n)) {
    *why = std::string("zstd: ") + ZSTD_getErrorName(n);
    return false;
  }
  if (n != expanded_size) {
    *why = "expands to " + std::to_string(n) + " bytes, not " + std::to_string(expanded_size);
    return false;
  }
  return true;
}

bool TraceReader::SymbolChunk(uint64_t offset, RecordVisitor* visitor, ReadResult* result) {
  std::string why;
  if (!result->has_end)
    why = "a symbol section before the end record";
  else if (Expand(&why))
    DecodeSymbolRecords(
        expanded_.data(), expanded_.size(),
        [&](const SymbolModule& m) { visitor->OnSymbolModule(m); },
        [&](const SymbolizedAddress& a) { visitor->OnSymbolizedAddress(a); }, &why);
  if (why.empty()) return true;
  result->status = TraceStatus::kCorrupt;
  result->message = why + " in the symbol chunk at byte " + std::to_string(offset);
  return false;
}

bool TraceReader::CompressedChunk(uint64_t offset, RecordVisitor* visitor, ReadResult* result) {
  auto corrupt = [&](const std::string& why) {
    result->status = TraceStatus::kCorrupt;
    result->message = why + " in the compressed chunk at byte " + std::to_string(offset);
    return false;
  };
  std::string why;
  if (!Expand(&why)) return corrupt(why);
  const uint8_t* p = expanded_.data();
  const uint8_t* end = p + expanded_.size();
  while (p < end) {
    if (end - p < static_cast<ptrdiff_t>(format::kChunkPrefixSize)) return corrupt("a cut chunk");
    uint32_t size = static_cast<uint32_t>(GetLE(p, 4));
    uint32_t flags = static_cast<uint32_t>(GetLE(p + 4, 4));
    std::string message;
    if (!CheckChunkHeader(size, flags,
                          format::kChunkFinished | format::kChunkEnd | format::kChunkThread, offset,
                          &message))
      return corrupt("inner " + message.substr(0, message.find(" at byte")));
    p += format::kChunkPrefixSize;
    if (static_cast<size_t>(end - p) < size) return corrupt("a cut chunk");
    if (flags & format::kChunkThread) {
      if (!ThreadChunk(p, size, offset, visitor, result)) return false;
      p += size;
      continue;
    }
    if (!PlainChunk(p, size, offset, visitor, result)) return false;
    p += size;
    if (!(flags & format::kChunkFinished)) return false;
  }
  return true;
}

bool TraceReader::DecodeChunk(const uint8_t* begin, const uint8_t* end,
                              RecordVisitor* v, ReadResult* result) {
  Cursor c{begin, end};
  DeltaState d;
  d.address_bases = version_ >= 4;
  while (c.p < end) {
    if (*c.p == static_cast<uint8_t>(RecordType::kStackNodeAt)) {
      result->message = "a thread chunk's record (type " + std::to_string(*c.p) +
                        ") in a plain chunk";
      return false;
    }
    if (!DecodeRecord(&c, &d, v, result)) return false;
  }
  return true;
}

bool TraceReader::ThreadChunk(const uint8_t* payload, uint32_t size, uint64_t offset,
                              RecordVisitor* visitor, ReadResult* result) {
  auto corrupt = [&](const std::string& why) {
    result->status = TraceStatus::kCorrupt;
    result->message = why + " in the thread chunk at byte " + std::to_string(offset);
    return false;
  };
  if (result->has_end) return corrupt("data after the end record");
  uint64_t used = GetLE(payload, 4);
  uint64_t gap_bytes = GetLE(payload + 4, 4);
  if (used + gap_bytes > size - format::kThreadChunkHeader)
    return corrupt("records past the chunk's end");
  auto stream = std::make_unique<ThreadStream>();
  stream->first_seq = GetLE(payload + 8, 8);
  uint64_t low_seq = GetLE(payload + 16, 8);
  // Every event below low_seq is in the chunks read so far.
  if (!Drain(low_seq, visitor, result)) return false;
  const uint8_t* records = payload + format::kThreadChunkHeader;
  if (!wants_events_) {
    if (!ThreadChunkStructure(records, records + used, visitor, result))
      return corrupt(result->message);
    return true;
  }
  stream->bytes.assign(records, records + used);
  stream->c = Cursor{stream->bytes.data(), stream->bytes.data() + used};
  stream->offset = offset;
  stream->gaps.assign(payload + size - gap_bytes, payload + size);
  stream->gaps_left = stream->gaps.size();
  if (!stream->NextPair()) return corrupt("a cut gap area");
  if (!Advance(stream.get(), visitor, result)) return corrupt(result->message);
  if (stream->at_event) {
    pending_.push_back(std::move(stream));
    std::push_heap(pending_.begin(), pending_.end(), StreamLater());
  }
  return true;
}

bool TraceReader::ThreadChunkStructure(const uint8_t* records, const uint8_t* end,
                                       RecordVisitor* v, ReadResult* result) {
  Cursor c{records, end};
  DeltaState d;
  while (c.p < end) {
    uint8_t type = *c.p;
    if (type == static_cast<uint8_t>(RecordType::kStackNode) ||
        type == static_cast<uint8_t>(RecordType::kEnd)) {
      result->message = "a plain chunk's record (type " + std::to_string(type) +
                        ") in a thread chunk";
      return false;
    }
    if (!DecodeRecord(&c, &d, v, result)) return false;
  }
  return true;
}

// Decodes what comes before the stream's next event (state, stack nodes,
// the Module records of a ModuleMap) and stands at that event.
bool TraceReader::Advance(ThreadStream* s, RecordVisitor* v, ReadResult* result) {
  s->at_event = false;
  while (s->c.p < s->c.end) {
    uint8_t type = *s->c.p;
    if (TakesSeq(type)) {
      if (!s->started) {
        s->next_seq = s->first_seq;
      } else if (!s->Following(s->d.seq, &s->next_seq)) {
        result->message = "a cut gap area";
        return false;
      }
      s->at_event = true;
      return true;
    }
    if (type == static_cast<uint8_t>(RecordType::kStackNode) ||
        type == static_cast<uint8_t>(RecordType::kEnd)) {
      result->message = "a plain chunk's record (type " + std::to_string(type) +
                        ") in a thread chunk";
      return false;
    }
    if (!DecodeRecord(&s->c, &s->d, v, result)) return false;
  }
  return true;
}

bool TraceReader::Drain(uint64_t below, RecordVisitor* v, ReadResult* result) {
  while (!pending_.empty() && pending_.front()->next_seq < below) {
    ThreadStream* s = pending_.front().get();
    // The first stream goes on alone while its events come before every
    // other stream's next one (a heap's second smallest is a child of its
    // root): a thread's run of events costs no heap operation.
    uint64_t limit = below;
    for (size_t child = 1; child <= 2 && child < pending_.size(); ++child)
      limit = std::min(limit, pending_[child]->next_seq);
    do {
      s->d.seq = s->next_seq;
      s->started = true;
      if (!DecodeRecord(&s->c, &s->d, v, result) || !Advance(s, v, result)) {
        result->status = TraceStatus::kCorrupt;
        result->message += " in the thread chunk at byte " + std::to_string(s->offset);
        return false;
      }
    } while (s->at_event && s->next_seq < limit);
    std::pop_heap(pending_.begin(), pending_.end(), StreamLater());
    if (s->at_event)
      std::push_heap(pending_.begin(), pending_.end(), StreamLater());
    else
      pending_.pop_back();  // all of it delivered
  }
  return true;
}

bool TraceReader::StackNodeAt(uint64_t id, uint64_t parent, uint64_t ip, RecordVisitor* v,
                              ReadResult* result) {
  if (id == 0 || id > format::kMaxStackNodeId || parent >= id ||
      (id <= stack_depth_.size() && stack_depth_[id - 1])) {
    result->message = "a stack node with a bad id";
    return false;
  }
  if (parent && (parent > stack_depth_.size() || !stack_depth_[parent - 1])) {
    orphans_.emplace(parent, std::make_pair(id, ip));  // its parent comes later
    return true;
  }
  // The node, and any that waited for it.
  std::vector<std::pair<uint64_t, std::pair<uint64_t, uint64_t>>> ready = {{parent, {id, ip}}};
  while (!ready.empty()) {
    auto [p, node] = ready.back();
    ready.pop_back();
    auto [n, n_ip] = node;
    uint16_t depth = p ? static_cast<uint16_t>(stack_depth_[p - 1] + 1) : 1;
    if (depth > format::kMaxStackDepth) {
      result->message = "a stack deeper than " + std::to_string(format::kMaxStackDepth) +
                        " frames, the format's limit";
      return false;
    }
    if (stack_depth_.size() < n) stack_depth_.resize(n, 0);
    stack_depth_[n - 1] = depth;
    if (n >= next_stack_id_) next_stack_id_ = n + 1;
    v->OnStackNode(n, p, n_ip);
    auto [first, last] = orphans_.equal_range(n);
    for (auto it = first; it != last; ++it) ready.push_back({n, it->second});
    orphans_.erase(first, last);
  }
  return true;
}

bool TraceReader::DecodeRecord(Cursor* cursor, DeltaState* delta, RecordVisitor* v,
                               ReadResult* result) {
  Cursor& c = *cursor;
  DeltaState& d = *delta;
  {  // one record
    if (result->has_end) {
      result->message = "data after the end record";
      return false;
    }
    const uint8_t* record_start = c.p;
    auto type = static_cast<RecordType>(*c.p++);
    if (!wants_events_ && SkipEvent(type, &c)) {
      if (!c.ok) {
        result->message = "undecodable record of type " + std::to_string(*record_start);
        return false;
      }
      ++result->records;
      ++result->events;
      return true;
    }
    bool is_event = true;
    switch (type) {
      case RecordType::kModuleMap:
        is_event = false;
        module_generation_ = c.U();
        if (c.ok) v->OnModuleMap(module_generation_);
        break;
      case RecordType::kModule: {
        is_event = false;
        ModuleInfo m;
        m.generation = module_generation_;
        m.load_bias = c.U();
        uint64_t count = c.U();
        if (count > kMaxModuleSegments) c.ok = false;
        for (uint64_t i = 0; i < count && c.ok; ++i) {
          ModuleSegment s;
          s.start = c.U();
          s.length = c.U();
          m.segments.push_back(s);
        }
        m.path = c.Str();
        if (version_ >= 3) m.build_id = c.Str();
        if (c.ok) v->OnModule(m);
        break;
      }
      case RecordType::kStackNode: {
        is_event = false;
        uint64_t parent = c.U();
        uint64_t ip = c.U();
        if (!c.ok) break;
        // Its id is its place among the trace's nodes.
        if (!StackNodeAt(next_stack_id_, parent, ip, v, result)) return false;
        break;
      }
      case RecordType::kStackNodeAt: {
        is_event = false;
        uint64_t id = c.U();
        uint64_t parent = c.U();
        uint64_t ip = c.U();
        if (!c.ok) break;
        if (!StackNodeAt(id, parent, ip, v, result)) return false;
        break;
      }
      case RecordType::kTime:
        is_event = false;
        d.time += c.U();
        break;
      case RecordType::kThread:
        is_event = false;
        d.tid = c.U32();
        break;
      case RecordType::kAlloc: {
        auto& [e, dirty] = events_.alloc;  // every field of e is set below
        e.prefix = ReadPrefix(&c, &d);
        uint64_t kind = c.U();
        if (kind >= format::kAllocKinds) c.ok = false;
        e.kind = static_cast<format::AllocKind>(kind);
        e.address = ReadAddress(&c, &d);
        e.requested = c.U();
        e.usable = e.requested + static_cast<uint64_t>(c.S());
        e.alignment = c.U();
        e.mapped_bytes = c.U();
        e.flags = c.U32();
        ReadSyscalls(&c, &e.syscalls, &dirty);
        if (c.ok) v->OnAlloc(e);
        break;
      }
      case RecordType::kAllocSmall: {
        auto& [e, dirty] = events_.alloc;  // every field of e is set below
        e.prefix = ReadPrefix(&c, &d);
        e.kind = format::AllocKind::kMalloc;
        e.address = ReadAddress(&c, &d);
        e.requested = c.U();
        e.usable = e.requested + static_cast<uint64_t>(c.S());
        e.alignment = 0;
        e.mapped_bytes = 0;
        e.flags = 0;
        if (dirty) ClearSyscalls(&e.syscalls, &dirty);
        if (c.ok) v->OnAlloc(e);
        break;
      }
      case RecordType::kFreeSmall: {
        auto& [e, dirty] = events_.free;  // every field of e is set below
        e.prefix = {d.time, d.tid, 0};
        e.kind = format::FreeKind::kFree;
        e.address = ReadAddress(&c, &d);
        e.mapped_bytes = 0;
        e.flags = 0;
        if (dirty) ClearSyscalls(&e.syscalls, &dirty);
        if (c.ok) v->OnFree(e);
        break;
      }
      case RecordType::kFree: {
        auto& [e, dirty] = events_.free;  // every field of e is set below
        e.prefix = ReadPrefix(&c, &d);
        uint64_t kind = c.U();
        if (kind > static_cast<uint64_t>(format::FreeKind::kRealloc)) c.ok = false;
        e.kind = static_cast<format::FreeKind>(kind);
        e.address = ReadAddress(&c, &d);
        e.mapped_bytes = c.U();
        e.flags = c.U32();
        ReadSyscalls(&c, &e.syscalls, &dirty);
        if (c.ok) v->OnFree(e);
        break;
      }
      case RecordType::kMmap: {
        auto& [e, dirty] = events_.mmap;  // every field of e is set below
        e.prefix = ReadPrefix(&c, &d);
        e.address = ReadAddress(&c, &d);
        e.length = c.U();
        e.prot = c.U32();
        e.map_flags = c.U32();
        e.fd = static_cast<int32_t>(c.S());
        e.offset = c.U();
        e.flags = c.U32();
        ReadSyscalls(&c, &e.syscalls, &dirty);
        if (c.ok) v->OnMmap(e);
        break;
      }
      case RecordType::kMunmap: {
        auto& [e, dirty] = events_.munmap;  // every field of e is set below
        e.prefix = ReadPrefix(&c, &d);
        e.address = ReadAddress(&c, &d);
        e.length = c.U();
        e.flags = c.U32();
        e.resident_pages = c.U();
        e.used_bytes = c.U();
        ReadSyscalls(&c, &e.syscalls, &dirty);
        if (c.ok) v->OnMunmap(e);
        break;
      }
      case RecordType::kMremap: {
        auto& [e, dirty] = events_.mremap;  // every field of e is set below
        e.prefix = ReadPrefix(&c, &d);
        e.old_address = ReadAddress(&c, &d);
        e.old_length = c.U();
        e.new_length = c.U();
        e.mremap_flags = c.U32();
        e.new_address = e.old_address + static_cast<uint64_t>(c.S());
        e.flags = c.U32();
        ReadSyscalls(&c, &e.syscalls, &dirty);
        if (c.ok) v->OnMremap(e);
        break;
      }
      case RecordType::kBrk: {
        auto& [e, dirty] = events_.brk;  // every field of e is set below
        e.prefix = ReadPrefix(&c, &d);
        uint64_t kind = c.U();
        if (kind > static_cast<uint64_t>(format::BrkKind::kSbrk)) c.ok = false;
        e.kind = static_cast<format::BrkKind>(kind);
        e.old_break = c.U();
        e.new_break = c.U();
        e.argument = c.S();
        e.flags = c.U32();
        ReadSyscalls(&c, &e.syscalls, &dirty);
        if (c.ok) v->OnBrk(e);
        break;
      }
      case RecordType::kMemoryCall: {
        auto& [e, dirty] = events_.memory_call;  // every field of e is set below
        e.prefix = ReadPrefix(&c, &d);
        uint64_t kind = c.U();
        if (kind >= static_cast<uint64_t>(format::kSyscallKinds)) c.ok = false;
        e.kind = static_cast<format::SyscallKind>(kind);
        e.address = ReadAddress(&c, &d);
        e.length = c.U();
        e.argument = c.U();
        e.flags = c.U32();
        ReadSyscalls(&c, &e.syscalls, &dirty);
        if (c.ok) v->OnMemoryCall(e);
        break;
      }
      case RecordType::kEnd: {
        is_event = false;
        EndEvent e;
        uint64_t reason = c.U();
        if (reason < 1 || reason > static_cast<uint64_t>(format::EndReason::kRawExit))
          c.ok = false;
        e.reason = static_cast<format::EndReason>(reason);
        e.status = c.S();
        e.records = c.U();
        e.events = c.U();
        e.stack_nodes = c.U();
        e.chunks_lost = c.U();
        e.bytes_lost = c.U();
        // A fresh EndEvent: its counts are zero, but each is read whole.
        for (SyscallCounts* counts : {&e.shim_syscalls, &e.observed_syscalls, &e.before_start_syscalls}) {
          bool dirty = true;
          ReadSyscalls(&c, counts, &dirty);
        }
        if (c.ok) {
          result->has_end = true;
          result->end = e;
          v->OnEnd(e);
        }
        break;
      }
      default:
        result->message = "unknown record type " + std::to_string(*record_start);
        return false;
    }
    if (!c.ok) {
      result->message = "undecodable record of type " +
                        std::to_string(*record_start);
      return false;
    }
    ++result->records;
    if (is_event) ++result->events;
  }
  return true;
}

}  // namespace pagewaste
