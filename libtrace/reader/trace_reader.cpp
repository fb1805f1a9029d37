// The trace reader's chunk layer: byte sources, the header, and the chunk
// stream (plain, compressed, symbol and thread chunks); records are decoded
// in record_decoding.cpp, thread chunks merged in thread_merge.cpp.
#include "trace_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <zstd.h>

#include "support/digit_grouping.h"
#include "format/expansion_limit.h"
#include "format/little_endian.h"
#include "trace_reader_internal.h"

namespace pagewaste {
namespace {

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

// A chunk header's size and flags, checked: false (and *message) if they
// cannot be a chunk's.
bool CheckChunkHeader(uint32_t size, uint32_t flags, uint32_t allowed_flags, uint64_t offset,
                      std::string* message) {
  bool thread = flags & format::kChunkThread;
  if (size != 0 && size <= format::kMaxChunkPayload && !(flags & ~allowed_flags) &&
      (!thread || (size >= format::kThreadChunkHeader && !(flags & format::kChunkEnd))))
    return true;
  *message = "bad chunk header (size " + std::to_string(size) + ", flags " + std::to_string(flags) +
             ") at byte " + std::to_string(offset);
  return false;
}

}  // namespace

std::unique_ptr<ByteSource> OpenFileSource(const std::string& path, std::string* err) {
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
    case TraceStatus::kComplete:
      return "complete";
    case TraceStatus::kIncomplete:
      return "incomplete";
    case TraceStatus::kTruncated:
      return "truncated";
    case TraceStatus::kCorrupt:
      return "corrupt";
  }
  return "unknown";
}

TraceReader::TraceReader(std::unique_ptr<ByteSource> source) : source_(std::move(source)) {}

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
  if (got < sizeof format::kMagic || memcmp(fixed, format::kMagic, sizeof format::kMagic) != 0) {
    *err = "not a pagewaste trace (bad magic)";
    return false;
  }
  if (got < sizeof fixed) {
    *err = "truncated header (" + std::to_string(got) + " of " + std::to_string(sizeof fixed) +
           " bytes)";
    return false;
  }
  h->version = static_cast<uint16_t>(GetLE(fixed + 8, 2));
  h->flags = static_cast<uint16_t>(GetLE(fixed + 10, 2));
  version_ = h->version;
  header_flags_ = h->flags;
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
      result.message = io_err.empty()
                           ? "ends inside a chunk header at byte " + std::to_string(chunk_offset)
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
    chunk_.Resize(size);
    got = ReadFully(chunk_.data(), size, &io_err);
    if (got < size) {
      result.status = TraceStatus::kTruncated;
      result.message = "ends inside a chunk at byte " + std::to_string(offset_) + " (" +
                       std::to_string(got) + " of " + std::to_string(size) + " bytes)";
      break;
    }
    bool more = (flags & format::kChunkSymbols) ? SymbolChunk(chunk_offset, visitor, &result)
                : (flags & format::kChunkZstd)  ? CompressedChunk(chunk_offset, visitor, &result)
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
  Conclude(&result);
  return result;
}

// What a trace read to its end is: complete, or why not (no End record,
// counts that disagree, chunks or ring-buffer records lost, symbols
// missing), said in result->message.
void TraceReader::Conclude(ReadResult* result) const {
  if (result->status == TraceStatus::kComplete && !orphans_.empty()) {
    result->status = TraceStatus::kCorrupt;
    result->message = "a stack node whose parent is not in the trace";
  }
  if (result->status == TraceStatus::kComplete) {
    if (!result->has_end) {
      result->status = TraceStatus::kTruncated;
      result->message =
          "no end record: the process ended without closing its trace "
          "(killed, or by a signal whose handler it had replaced); the " +
          std::to_string(result->events) + " events before that are all here";
    } else if (result->end.chunks_lost == 0 && result->end.records != result->records - 1) {
      result->status = TraceStatus::kCorrupt;
      result->message = "the end record counts " + std::to_string(result->end.records) +
                        " records, read " + std::to_string(result->records - 1);
    } else if (result->end.chunks_lost > 0) {
      result->status = TraceStatus::kIncomplete;
      result->events_lost =
          result->end.events > result->events ? result->end.events - result->events : 0;
      result->message = "the producer could not write " + GroupDigits(result->end.chunks_lost) +
                        " of its chunks (a full disk, or an unwritable file): " +
                        GroupDigits(result->events_lost) + " events and " +
                        GroupDigits(result->end.bytes_lost) + " bytes lost";
    }
  }
  if (result->events_dropped &&
      (result->status == TraceStatus::kComplete || result->status == TraceStatus::kIncomplete)) {
    std::string dropped = "the ring buffer had no room for " + GroupDigits(result->events_dropped) +
                          " events (the bpf backend; raise --ring-buffer)";
    result->message =
        result->status == TraceStatus::kComplete ? dropped : result->message + "; " + dropped;
    result->status = TraceStatus::kIncomplete;
    result->events_lost += result->events_dropped;
  }
  if (result->status == TraceStatus::kComplete && (header_flags_ & format::kHeaderHasSymbols) &&
      !symbols_seen_) {
    result->status = TraceStatus::kIncomplete;
    result->symbols_missing = true;
    result->message =
        "its header says it carries its symbols, but the symbol section is missing "
        "(the file was cut short)";
  }
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
  // The payload (expanded size and frames) against what it expands to.
  if (expanded_size > chunk_.size() * kMaxExpansion) {
    *why = "expands " + GroupDigits(expanded_size / chunk_.size()) + " times, more than " +
           GroupDigits(kMaxExpansion) + ", as no trace does (a decompression bomb)";
    return false;
  }
  expanded_.Resize(expanded_size);
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
    symbols_seen_ = DecodeSymbolRecords(
        expanded_.data(), expanded_.size(),
        [&](const SymbolModule& m) { visitor->OnSymbolModule(m); },
        [&](const SymbolizedAddress& a) { visitor->OnSymbolizedAddress(a); }, &symbol_name_bytes_,
        &why);
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

}  // namespace pagewaste
