// Rewriting a closed trace with its chunks compressed with zstd, on all cores
// (trace_compressor.h).
#include "trace_compressor.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "format/expansion_limit.h"
#include "format/format.h"
#include "format/little_endian.h"
#include "producer/record_writer.h"
#include "reader/trace_reader.h"

namespace pagewaste {
namespace {

// Plain chunks are packed into compressed chunks of about this much: large
// enough for zstd to find a program's repetitions, small enough for the
// reader to hold one expanded.
constexpr size_t kGroupBytes = 8u << 20;
constexpr int kLevel = 3;
// Groups compressed at once, on as many cores.
constexpr size_t kMaxPackers = 4;

// A read-only mapping of a whole file, unmapped on destruction.
class MappedFile {
 public:
  bool Open(const std::string& path, std::string* err) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      *err = path + ": " + strerror(errno);
      return false;
    }
    struct stat st;
    bool ok = fstat(fd, &st) == 0;
    if (ok) {
      mode_ = st.st_mode & 07777;
      size_ = static_cast<size_t>(st.st_size);
    }
    if (ok && size_) {
      // Populated at once: faulting its pages in one at a time cost more
      // than compressing them.
      void* m = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
      ok = m != MAP_FAILED;
      if (ok) data_ = static_cast<const uint8_t*>(m);
    }
    if (!ok) *err = path + ": " + strerror(errno);
    close(fd);
    return ok;
  }
  ~MappedFile() {
    if (data_) munmap(const_cast<uint8_t*>(data_), size_);
  }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  mode_t mode() const { return mode_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  mode_t mode_ = 0600;
};

struct Group {
  size_t begin;  // file offsets of whole plain chunks, headers included
  size_t end;
};

// A group's chunks as they are to be compressed: thread chunks without the
// unused space after their records (their payload length cut to match).
void GroupBytes(const uint8_t* data, const Group& g, std::vector<uint8_t>* out) {
  out->clear();
  out->reserve(g.end - g.begin);
  for (size_t offset = g.begin; offset < g.end;) {
    uint32_t length = static_cast<uint32_t>(GetLE(data + offset, 4));
    uint32_t flags = static_cast<uint32_t>(GetLE(data + offset + 4, 4));
    size_t at = out->size();
    size_t whole = format::kChunkPrefixSize + length;
    out->insert(out->end(), data + offset, data + offset + whole);
    if (flags & format::kChunkThread) out->resize(at + CompactThreadChunk(out->data() + at, whole));
    offset += whole;
  }
}

// The plain chunks up to and including the one with the End record, in
// groups; false (with *why) if the trace is not one to rewrite.
bool PlanGroups(const uint8_t* data, size_t size, size_t offset, std::vector<Group>* groups,
                std::string* why) {
  while (offset + format::kChunkPrefixSize <= size) {
    uint32_t length = static_cast<uint32_t>(GetLE(data + offset, 4));
    uint32_t flags = static_cast<uint32_t>(GetLE(data + offset + 4, 4));
    if (flags & format::kChunkZstd) {
      *why = "already compressed";
      return false;
    }
    if (length == 0 || length > format::kMaxChunkPayload ||
        (flags & ~(format::kChunkFinished | format::kChunkEnd | format::kChunkThread)) ||
        !(flags & format::kChunkFinished) ||
        size - offset - format::kChunkPrefixSize < length ||
        ((flags & format::kChunkThread) &&
         (length < format::kThreadChunkHeader ||
          GetLE(data + offset + format::kChunkPrefixSize, 4) +
                  GetLE(data + offset + format::kChunkPrefixSize + 4, 4) >
              length - format::kThreadChunkHeader))) {
      break;  // reserved space, a chunk still being written, or damage
    }
    size_t next = offset + format::kChunkPrefixSize + length;
    if (groups->empty() || next - groups->back().begin > kGroupBytes)
      groups->push_back({offset, next});
    else
      groups->back().end = next;
    if (flags & format::kChunkEnd) return true;
    offset = next;
  }
  *why = "not closed by its process";
  return false;
}

// Compresses groups, one at a time, into what goes into the file for each.
class Packer {
 public:
  Packer() : zstd_(ZSTD_createCCtx()) {
    if (!zstd_) return;  // said by Pack
    ZSTD_CCtx_setParameter(zstd_, ZSTD_c_compressionLevel, kLevel);
    // A damaged compressed chunk is then reported as such, not decoded.
    ZSTD_CCtx_setParameter(zstd_, ZSTD_c_checksumFlag, 1);
    // Long-distance matching over a window as large as a group: a program's
    // repetitions are whole stretches of records. churn: 11.5 KB -> 6.6 KB
    // for 8 MiB of plain chunks, at the same speed. (Readers accept windows
    // up to 2^27 without being told.)
    ZSTD_CCtx_setParameter(zstd_, ZSTD_c_enableLongDistanceMatching, 1);
    ZSTD_CCtx_setParameter(zstd_, ZSTD_c_windowLog, 24);
  }
  Packer(const Packer&) = delete;
  Packer& operator=(const Packer&) = delete;
  ~Packer() { ZSTD_freeCCtx(zstd_); }

  // Sets `packed` to the group's compressed chunk (the last one flagged
  // kChunkEnd), or to its plain chunks where compressing could not bring
  // it under a chunk's largest payload; or sets `error`. Throws nothing: it
  // runs on threads of its own.
  void Pack(const uint8_t* data, const Group& g, bool last) {
    error.clear();
    try {
      PackOrThrow(data, g, last);
    } catch (const std::bad_alloc&) {
      error = "out of memory for a group of chunks";
    }
  }

  // What Pack made, held until the next Pack.
  const uint8_t* packed = nullptr;
  size_t packed_size = 0;
  std::string error;

 private:
  void PackOrThrow(const uint8_t* data, const Group& g, bool last) {
    if (!zstd_) {
      error = "zstd: no compression context";
      return;
    }
    GroupBytes(data, g, &chunks_);
    size_t plain = chunks_.size();
    constexpr size_t kHead = format::kChunkPrefixSize + 4;
    // Not zeroed: only what zstd writes is written out.
    size_t room =
        kHead + ZSTD_compressBound(plain) + plain / kMaxExpansion + kSkippableFrameHeader + 1;
    if (room > room_) {
      out_.reset(new uint8_t[room]);
      room_ = room;
    }
    size_t n = ZSTD_compress2(zstd_, out_.get() + kHead, room_ - kHead, chunks_.data(), plain);
    if (ZSTD_isError(n)) {
      error = std::string("zstd: ") + ZSTD_getErrorName(n);
      return;
    }
    size_t pad = ExpansionPadding(4 + n, plain);
    if (pad) {
      WriteSkippableFrame(out_.get() + kHead + n, pad);
      n += pad;
    }
    if (4 + n > format::kMaxChunkPayload) {
      // Incompressible and as large as a chunk may be: keep it plain.
      packed = chunks_.data();
      packed_size = plain;
      return;
    }
    PutLE32(out_.get(), static_cast<uint32_t>(4 + n));
    PutLE32(out_.get() + 4, format::kChunkFinished | format::kChunkZstd |
                                (last ? format::kChunkEnd : 0u));
    PutLE32(out_.get() + format::kChunkPrefixSize, static_cast<uint32_t>(plain));
    packed = out_.get();
    packed_size = kHead + n;
  }

  std::unique_ptr<uint8_t[]> out_;
  size_t room_ = 0;
  ZSTD_CCtx* zstd_;
  std::vector<uint8_t> chunks_;
};

bool WriteAll(int fd, const uint8_t* p, size_t n, std::string* err) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      *err = strerror(errno);
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

bool CompressTrace(const std::string& path, CompressResult* result, std::string* err) {
  MappedFile in;
  if (!in.Open(path, err)) return false;
  result->bytes_before = result->bytes_after = in.size();
  // The header, as the reader checks it; the chunks start where it ends.
  std::unique_ptr<ByteSource> source = OpenFileSource(path, err);
  if (!source) return false;
  TraceReader reader(std::move(source));
  TraceHeader h;
  std::string why;
  if (!reader.ReadHeader(&h, &why)) {
    result->why = why;
    return true;
  }
  size_t header = reader.offset();
  std::vector<Group> groups;
  if (!PlanGroups(in.data(), in.size(), header, &groups, &result->why)) return true;

  std::string temp = path + ".compressing";
  // Private like the trace itself (0600), and never through a link planted
  // at the temporary name.
  unlink(temp.c_str());
  int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, in.mode() & 0600);
  if (fd < 0) {
    *err = temp + ": " + strerror(errno);
    return false;
  }
  // Groups are compressed independently, so as many at once as there are
  // cores (at most kMaxPackers, each holding a group and its output), and
  // written in order.
  size_t packers = std::min<size_t>({std::max(1u, std::thread::hardware_concurrency()),
                                     kMaxPackers, groups.size()});
  std::vector<Packer> packer(packers);
  bool ok = WriteAll(fd, in.data(), header, err);
  uint64_t written = header;
  for (size_t first = 0; ok && first < groups.size(); first += packers) {
    size_t count = std::min(packers, groups.size() - first);
    auto pack = [&](size_t k) {
      packer[k].Pack(in.data(), groups[first + k], first + k + 1 == groups.size());
    };
    std::vector<std::thread> beside;
    for (size_t k = 1; k < count; ++k) {
      try {
        beside.emplace_back(pack, k);
      } catch (const std::system_error&) {
        pack(k);  // no thread to be had: here, one after another
      }
    }
    pack(0);
    for (std::thread& t : beside) t.join();
    for (size_t k = 0; ok && k < count; ++k) {
      if (!packer[k].error.empty()) {
        *err = packer[k].error;
        ok = false;
        break;
      }
      ok = WriteAll(fd, packer[k].packed, packer[k].packed_size, err);
      written += packer[k].packed_size;
    }
  }
  close(fd);
  if (ok && rename(temp.c_str(), path.c_str()) != 0) {
    *err = strerror(errno);
    ok = false;
  }
  if (!ok) {
    unlink(temp.c_str());
    *err = path + ": cannot write the compressed trace: " + *err;
    return false;
  }
  result->compressed = true;
  result->bytes_after = written;
  return true;
}

}  // namespace pagewaste
