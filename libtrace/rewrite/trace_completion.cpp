// Ending a trace whose process could not end it itself (trace_completion.h).
#include "trace_completion.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "format/little_endian.h"
#include "producer/record_writer.h"
#include "reader/trace_reader.h"

namespace pagewaste {
namespace {

class CountStackNodes : public RecordVisitor {
 public:
  void OnStackNode(uint64_t, uint64_t, uint64_t) override { ++nodes; }
  bool WantsEvents() const override { return false; }
  uint64_t nodes = 0;
};

class BufferSink : public ChunkSink {
 public:
  uint8_t* NextChunk(size_t) override { return nullptr; }
  bool FinishChunk(const uint8_t* data, size_t size) override {
    bytes.insert(bytes.end(), data, data + size);
    return true;
  }
  std::vector<uint8_t> bytes;
};

// Where the chunks of the trace end, the last one's flags, and the
// unfinished chunks (with their flags) the dead writers left: walked from
// the header on, as the reader does. False if a chunk runs past the file.
bool FindLastChunk(int fd, uint64_t offset, uint64_t file_size, uint64_t* end,
                   uint32_t* last_flags, std::vector<std::pair<uint64_t, uint32_t>>* unfinished) {
  *last_flags = 0;
  for (;;) {
    uint8_t prefix[format::kChunkPrefixSize];
    if (offset + sizeof prefix > file_size ||
        pread(fd, prefix, sizeof prefix, static_cast<off_t>(offset)) != sizeof prefix)
      break;
    uint32_t size = static_cast<uint32_t>(GetLE(prefix, 4));
    uint32_t flags = static_cast<uint32_t>(GetLE(prefix + 4, 4));
    if (size == 0 && flags == 0) break;  // space reserved and never used
    if (offset + sizeof prefix + size > file_size) return false;
    *last_flags = flags;
    if (!(flags & format::kChunkFinished)) unfinished->push_back({offset, flags});
    offset += sizeof prefix + size;
    // An unfinished plain chunk is the writer's last; a thread chunk is only
    // its thread's.
    if (!(flags & (format::kChunkFinished | format::kChunkThread))) break;
  }
  *end = offset;
  return true;
}

}  // namespace

Completion CompleteTrace(const std::string& path, int64_t exit_status, std::string* why,
                         const SyscallCounts& observed, const SyscallCounts& before_start) {
  auto source = OpenFileSource(path, why);
  if (!source) return Completion::kNotCompletable;
  TraceReader reader(std::move(source));
  TraceHeader header;
  if (!reader.ReadHeader(&header, why)) return Completion::kNotCompletable;
  uint64_t header_size = reader.offset();

  int fd = open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    *why = path + ": " + strerror(errno);
    if (fd >= 0) close(fd);
    return Completion::kNotCompletable;
  }
  // The chunk headers first: a trace whose process ended it (almost every
  // one) is told by its last chunk without decoding a record.
  uint64_t end = 0;
  uint32_t last_flags = 0;
  std::vector<std::pair<uint64_t, uint32_t>> unfinished;
  bool whole_chunks = FindLastChunk(fd, header_size, static_cast<uint64_t>(st.st_size), &end,
                                    &last_flags, &unfinished);
  if (whole_chunks && (last_flags & format::kChunkEnd)) {
    close(fd);
    return Completion::kAlreadyEnded;
  }
  CountStackNodes nodes;
  ReadResult read = reader.ReadRecords(&nodes);
  if (read.has_end) {
    close(fd);
    return Completion::kAlreadyEnded;
  }
  // Only a trace that stops cleanly after whole chunks, as a dead writer
  // leaves it, is ended; one that is damaged keeps its verdict.
  if (read.status == TraceStatus::kCorrupt || !whole_chunks) {
    *why = read.message;
    close(fd);
    return Completion::kNotCompletable;
  }
  BufferSink sink;
  std::vector<uint8_t> buffer(RecordWriter::kMinBuffer);
  RecordWriter writer(buffer.data(), buffer.size(), &sink);
  writer.ContinueCounts(read.records, read.events, nodes.nodes);
  writer.End(format::EndReason::kRawExit, exit_status, SyscallCounts(), observed, before_start);

  // Every chunk a dead writer left open is finished as it stands: the last
  // plain one, and each thread's (a thread chunk's header says how much of
  // it holds records), so that the trace reads, and compresses, as closed.
  bool ok = true;
  for (const auto& [offset, chunk_flags] : unfinished) {
    uint8_t flags[4];
    PutLE(flags, chunk_flags | format::kChunkFinished, 4);
    ok = ok && pwrite(fd, flags, sizeof flags, static_cast<off_t>(offset + 4)) == sizeof flags;
  }
  ok = ok && ftruncate(fd, static_cast<off_t>(end)) == 0 &&
       pwrite(fd, sink.bytes.data(), sink.bytes.size(), static_cast<off_t>(end)) ==
           static_cast<ssize_t>(sink.bytes.size());
  if (!ok) *why = path + ": " + strerror(errno);
  close(fd);
  return ok ? Completion::kCompleted : Completion::kNotCompletable;
}

}  // namespace pagewaste
