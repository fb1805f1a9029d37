// The writer and the reader against each other, and the reader against
// every way a file can be cut short or damaged.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "memory_sink.h"
#include "producer/record_writer.h"
#include "symbol_section.h"
#include "trace_reader.h"
#include "format/varint.h"

namespace pagewaste {
namespace {

// Collects what the reader delivers, in order, as text.
class Recorder : public RecordVisitor {
 public:
  void OnModule(const ModuleInfo& m) override {
    log.push_back("module " + m.path + " " + std::to_string(m.load_bias) + " " +
                  std::to_string(m.segments.size()) + " " + m.build_id);
  }
  void OnStackNode(uint64_t id, uint64_t parent, uint64_t ip) override {
    log.push_back("node " + std::to_string(id) + " " + std::to_string(parent) + " " +
                  std::to_string(ip));
  }
  void OnAlloc(const AllocEvent& e) override {
    allocs.push_back(e);
    log.push_back("alloc");
  }
  void OnFree(const FreeEvent& e) override { frees.push_back(e); log.push_back("free"); }
  void OnMmap(const MmapEvent& e) override { mmaps.push_back(e); log.push_back("mmap"); }
  void OnMunmap(const MunmapEvent&) override { log.push_back("munmap"); }
  void OnMremap(const MremapEvent& e) override { mremaps.push_back(e); log.push_back("mremap"); }
  void OnBrk(const BrkEvent& e) override { brks.push_back(e); log.push_back("brk"); }
  void OnMemoryCall(const MemoryCallEvent& e) override {
    memory_calls.push_back(e);
    log.push_back("memory_call");
  }
  void OnEnd(const EndEvent&) override { log.push_back("end"); }

  std::vector<std::string> log;
  std::vector<AllocEvent> allocs;
  std::vector<FreeEvent> frees;
  std::vector<MmapEvent> mmaps;
  std::vector<MremapEvent> mremaps;
  std::vector<BrkEvent> brks;
  std::vector<MemoryCallEvent> memory_calls;
};

constexpr size_t kEvents = 800;  // spans several chunks of kMinBuffer

// A trace with every record type, several chunks long.
std::vector<uint8_t> SampleTrace(MemorySink* sink, bool lose_a_chunk = false) {
  const char* argv[] = {"prog", "--flag", "x"};
  HeaderInfo h;
  h.process.page_size = 4096;
  h.process.pid = 1234;
  h.process.ppid = 1;
  h.process.session_id = 0xfeedface;
  h.process.start_realtime_ns = 1700000000000000000ull;
  h.process.start_monotonic_ns = 5;
  h.exe = "/usr/bin/prog";
  h.argc = 3;
  h.argv = argv;
  uint8_t header[8192];
  size_t n = EncodeHeader(h, header, sizeof header);
  sink->bytes.assign(header, header + n);

  static uint8_t buffer[RecordWriter::kMinBuffer];
  RecordWriter w(buffer, sizeof buffer, sink);
  ModuleSegment segs[2] = {{0x1000, 0x200}, {0x5000, 0x100}};
  w.ModuleMap(1);
  w.Module(0x400000, segs, 2, "/usr/bin/prog", "6f818d3932014805ceb0bb4b12621b100ff16811");
  uint64_t root = w.StackNode(0, 0x401000);
  uint64_t leaf = w.StackNode(root, 0x401234);
  bool armed = lose_a_chunk;
  for (size_t i = 0; i < kEvents; ++i) {
    if (armed && sink->chunks == 1) {
      sink->fail_next = true;  // the second chunk will not make it
      armed = false;
    }
    AllocEvent a;
    a.prefix = {1000 * i, 77, leaf};
    a.kind = format::AllocKind::kCalloc;
    a.address = 0x7f0000001000 + 48 * i;
    a.requested = i;
    a.usable = i + 8;
    a.alignment = 16;
    a.mapped_bytes = i % 3 ? 0 : 8192;
    a.flags = format::kFlagMmappedChunk;
    a.syscalls.Add(format::SyscallKind::kMmap);
    a.syscalls.Add(format::SyscallKind::kBrk, 2);
    a.syscalls.ns = 1000 + i;
    w.Alloc(a);
    FreeEvent f;
    f.prefix = {1000 * i + 500, 78, 0};
    f.address = a.address;
    w.Free(f);
  }
  MmapEvent m;
  m.prefix = {9999999, 77, leaf};
  m.address = 0x7f1234560000;
  m.length = 2;
  m.prot = 3;
  m.map_flags = 0x22;
  m.fd = -1;
  w.Mmap(m);
  MunmapEvent u;
  u.prefix = {10000000, 77, root};
  u.address = m.address;
  u.length = 2;
  w.Munmap(u);
  MremapEvent r;
  r.prefix = {10000001, 77, root};
  r.old_address = 0x7f0000000000;
  r.old_length = 4096;
  r.new_length = 8192;
  r.new_address = 0x7e0000000000;  // moved down: a negative delta
  w.Mremap(r);
  BrkEvent b;
  b.prefix = {10000002, 77, root};
  b.kind = format::BrkKind::kSbrk;
  b.old_break = 0x555555000000;
  b.new_break = 0x555555021000;
  b.argument = -4096;
  w.Brk(b);
  MemoryCallEvent mc;
  mc.prefix = {10000003, 77, root};
  mc.kind = format::SyscallKind::kMprotect;
  mc.address = 0x7f0000002000;
  mc.length = 4096;
  mc.argument = 1;  // PROT_READ
  mc.syscalls.Add(format::SyscallKind::kMprotect);
  w.MemoryCall(mc);
  SyscallCounts own;
  own.Add(format::SyscallKind::kMmap, 3);
  own.Add(format::SyscallKind::kMunmap, 1);
  w.SetLifetime(5'000'000'123, 5'004'000'456);
  w.End(format::EndReason::kExit, 0, own);
  return sink->bytes;
}

ReadResult Read(std::vector<uint8_t> bytes, Recorder* rec, TraceHeader* h,
                std::string* header_err) {
  TraceReader reader(MemorySource(std::move(bytes)));
  if (!reader.ReadHeader(h, header_err)) return {};
  return reader.ReadRecords(rec);
}

TEST(TraceFormat, RoundTripsEveryRecordType) {
  MemorySink sink;
  std::vector<uint8_t> bytes = SampleTrace(&sink);
  EXPECT_GT(sink.chunks, 2);  // the sample spans several chunks
  Recorder rec;
  TraceHeader h;
  std::string err;
  ReadResult r = Read(bytes, &rec, &h, &err);
  ASSERT_EQ(err, "");
  EXPECT_EQ(r.status, TraceStatus::kComplete) << r.message;
  EXPECT_EQ(h.version, format::kVersion);
  EXPECT_EQ(h.process.page_size, 4096u);
  EXPECT_EQ(h.process.pid, 1234u);
  EXPECT_EQ(h.process.session_id, 0xfeedfaceu);
  EXPECT_EQ(h.exe, "/usr/bin/prog");
  EXPECT_EQ(h.argv, (std::vector<std::string>{"prog", "--flag", "x"}));
  EXPECT_EQ(rec.log[0], "module /usr/bin/prog 4194304 2 6f818d3932014805ceb0bb4b12621b100ff16811");
  EXPECT_EQ(rec.log[1], "node 1 0 4198400");
  EXPECT_EQ(rec.log[2], "node 2 1 4198964");
  ASSERT_EQ(rec.allocs.size(), kEvents);
  ASSERT_EQ(rec.frees.size(), kEvents);
  for (size_t i = 0; i < kEvents; ++i) {
    const AllocEvent& a = rec.allocs[i];
    EXPECT_EQ(a.prefix.time_ns, 1000 * i);
    EXPECT_EQ(a.prefix.tid, 77u);
    EXPECT_EQ(a.prefix.stack, 2u);
    EXPECT_EQ(a.kind, format::AllocKind::kCalloc);
    EXPECT_EQ(a.address, 0x7f0000001000 + 48 * i);
    EXPECT_EQ(a.requested, i);
    EXPECT_EQ(a.usable, i + 8);
    EXPECT_EQ(a.mapped_bytes, i % 3 ? 0u : 8192u);
    EXPECT_EQ(a.syscalls.count[0], 1u);
    EXPECT_EQ(a.syscalls.count[3], 2u);
    EXPECT_EQ(a.syscalls.Total(), 3u);
    EXPECT_EQ(a.syscalls.ns, 1000 + i);
    EXPECT_EQ(rec.frees[i].syscalls.Total(), 0u);
    EXPECT_EQ(rec.frees[i].address, a.address);
    EXPECT_EQ(rec.frees[i].prefix.tid, 78u);
  }
  ASSERT_EQ(rec.mmaps.size(), 1u);
  EXPECT_EQ(rec.mmaps[0].fd, -1);
  EXPECT_EQ(rec.mmaps[0].length, 2u);
  ASSERT_EQ(rec.mremaps.size(), 1u);
  EXPECT_EQ(rec.mremaps[0].new_address, 0x7e0000000000u);
  ASSERT_EQ(rec.brks.size(), 1u);
  EXPECT_EQ(rec.brks[0].argument, -4096);
  EXPECT_EQ(rec.brks[0].new_break, 0x555555021000u);
  EXPECT_TRUE(r.has_end);
  ASSERT_EQ(rec.memory_calls.size(), 1u);
  EXPECT_EQ(rec.memory_calls[0].kind, format::SyscallKind::kMprotect);
  EXPECT_EQ(rec.memory_calls[0].address, 0x7f0000002000u);
  EXPECT_EQ(rec.memory_calls[0].argument, 1u);
  EXPECT_EQ(r.end.events, 2 * kEvents + 5);
  EXPECT_EQ(r.end.stack_nodes, 2u);
  EXPECT_EQ(r.end.shim_syscalls.count[0], 3u);
  EXPECT_EQ(r.end.shim_syscalls.count[1], 1u);
  EXPECT_EQ(r.end.started_ns, 5'000'000'123u);
  EXPECT_EQ(r.end.ended_ns, 5'004'000'456u);
  EXPECT_EQ(rec.log.back(), "end");
}

TEST(TraceFormat, EventPrefixMatchesTheDocumentedBytes) {
  // record_writer.cpp: the first event of a chunk, a calloc at 1500 ns on
  // tid 4242 with stack 7, starts 04 dc 0b  05 92 21  10 07. A malloc at the
  // same time on the same thread is an AllocSmall: type and stack, then
  // address, requested and slack. A plain free 10 ns later on tid 5 gets a
  // Time (delta 10) and a Thread record, then a FreeSmall: type and
  // address, against tid 5's previous address (none yet: 0). An address is
  // near its thread's last one (low bit 0, then the zigzag delta) or counts
  // from that one's 16 MiB base (low bit 1).
  MemorySink sink;
  uint8_t buffer[RecordWriter::kMinBuffer];
  RecordWriter w(buffer, sizeof buffer, &sink);
  AllocEvent a;
  a.kind = format::AllocKind::kCalloc;
  a.prefix = {1500, 4242, 7};
  w.Alloc(a);
  size_t first = 8 + 8 + 8;  // chunk header, prefix, 8 one-byte fields
  AllocEvent m;
  m.prefix = {1500, 4242, 9};
  m.address = 0x40;
  m.requested = 24;
  m.usable = 24;
  w.Alloc(m);
  FreeEvent f;
  f.prefix = {1510, 5, 0};
  f.address = 0x40;
  w.Free(f);
  w.Flush();
  ASSERT_EQ(sink.bytes.size(), first + 6 + 7);
  std::vector<uint8_t> prefix(sink.bytes.begin() + 8, sink.bytes.begin() + 16);
  EXPECT_EQ(prefix, (std::vector<uint8_t>{0x04, 0xdc, 0x0b, 0x05, 0x92, 0x21, 0x10, 0x07}));
  // 0x40 near the calloc's address 0: zigzag 0x80, near: 0x100 = 80 02;
  // 24 bytes, none spare.
  std::vector<uint8_t> second(sink.bytes.begin() + first, sink.bytes.begin() + first + 6);
  EXPECT_EQ(second, (std::vector<uint8_t>{0x17, 0x09, 0x80, 0x02, 0x18, 0x00}));
  std::vector<uint8_t> third(sink.bytes.begin() + first + 6, sink.bytes.end());
  EXPECT_EQ(third, (std::vector<uint8_t>{0x04, 0x0a, 0x05, 0x05, 0x18, 0x80, 0x02}));
  EXPECT_EQ(w.records(), 7u);  // 3 events, 2 Time, 2 Thread
  EXPECT_EQ(w.events(), 3u);
  uint32_t chunk_size = sink.bytes[0] | sink.bytes[1] << 8 | sink.bytes[2] << 16 |
                        static_cast<uint32_t>(sink.bytes[3]) << 24;
  EXPECT_EQ(chunk_size, sink.bytes.size() - 8);
  EXPECT_EQ(sink.bytes[4], format::kChunkFinished);
}

TEST(TraceFormat, AFarAddressCountsFromItsBaseAndReadsBack) {
  // 0x1000040 after 0x40 on the same thread: 16 MiB + 0x40 from base 0,
  // zigzag 0x2000080, far: 0x4000101 = 81 82 80 20.
  MemorySink sink;
  uint8_t buffer[RecordWriter::kMinBuffer];
  RecordWriter w(buffer, sizeof buffer, &sink);
  for (uint64_t address : {0x40ull, 0x1000040ull, 0x40ull, 0x7fff12345678ull}) {
    FreeEvent f;
    f.prefix = {0, 9, 0};
    f.address = address;
    w.Free(f);
  }
  w.Flush();
  // Chunk header, Time, Thread, FreeSmall 80 02; then the far one.
  std::vector<uint8_t> far(sink.bytes.begin() + 8 + 2 + 2 + 3, sink.bytes.begin() + 8 + 2 + 2 + 3 + 5);
  EXPECT_EQ(far, (std::vector<uint8_t>{0x18, 0x81, 0x82, 0x80, 0x20}));
  Recorder rec;
  TraceHeader h;
  std::string err;
  HeaderInfo info;
  info.process.page_size = 4096;
  uint8_t header[1024];
  size_t n = EncodeHeader(info, header, sizeof header);
  std::vector<uint8_t> bytes(header, header + n);
  bytes.insert(bytes.end(), sink.bytes.begin(), sink.bytes.end());
  Read(bytes, &rec, &h, &err);
  ASSERT_EQ(rec.frees.size(), 4u);
  EXPECT_EQ(rec.frees[0].address, 0x40u);
  EXPECT_EQ(rec.frees[1].address, 0x1000040u);
  EXPECT_EQ(rec.frees[2].address, 0x40u);
  EXPECT_EQ(rec.frees[3].address, 0x7fff12345678u);
}

TEST(TraceFormat, EveryTruncationIsDetectedAndKeepsWhatCameBefore) {
  MemorySink sink;
  std::vector<uint8_t> bytes = SampleTrace(&sink);
  size_t previous_events = 0;
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    std::vector<uint8_t> part(bytes.begin(), bytes.begin() + cut);
    Recorder rec;
    TraceHeader h;
    std::string err;
    ReadResult r = Read(part, &rec, &h, &err);
    if (!err.empty()) {
      ASSERT_LT(cut, 100u) << "header error past the header: " << err;
      continue;
    }
    ASSERT_EQ(r.status, TraceStatus::kTruncated) << "cut at " << cut;
    ASSERT_FALSE(r.message.empty());
    // Events only arrive whole chunks at a time, and never go backwards.
    ASSERT_GE(r.events, previous_events);
    previous_events = r.events;
  }
  EXPECT_GT(previous_events, 0u);
  EXPECT_LT(previous_events, 2 * kEvents + 5);
}

TEST(TraceFormat, DamagedBytesNeverCrashTheReader) {
  MemorySink sink;
  std::vector<uint8_t> bytes = SampleTrace(&sink);
  size_t not_complete = 0;
  for (size_t pos = 0; pos < bytes.size(); pos += 7) {
    std::vector<uint8_t> damaged = bytes;
    damaged[pos] ^= 0xff;
    Recorder rec;
    TraceHeader h;
    std::string err;
    ReadResult r = Read(damaged, &rec, &h, &err);
    if (!err.empty() || r.status != TraceStatus::kComplete) ++not_complete;
  }
  EXPECT_GT(not_complete, 0u);
}

TEST(TraceFormat, ALostChunkIsCountedInTheEndRecord) {
  MemorySink sink;
  std::vector<uint8_t> bytes = SampleTrace(&sink, /*lose_a_chunk=*/true);
  Recorder rec;
  TraceHeader h;
  std::string err;
  ReadResult r = Read(bytes, &rec, &h, &err);
  ASSERT_TRUE(r.has_end);
  EXPECT_EQ(r.end.chunks_lost, 1u);
  EXPECT_GT(r.end.bytes_lost, 0u);
  // The chunks after the lost one still decode.
  EXPECT_LT(rec.allocs.size(), kEvents);
  EXPECT_GT(rec.allocs.size(), 0u);
  EXPECT_EQ(rec.log.back(), "end");
  // Lost events are never complete: what is missing is counted.
  EXPECT_EQ(r.status, TraceStatus::kIncomplete);
  // The sample's pairs and its five memory calls after them.
  EXPECT_EQ(r.end.events, 2 * kEvents + 5);
  EXPECT_GT(r.events_lost, 0u);
  EXPECT_EQ(r.events + r.events_lost, 2 * kEvents + 5);
  EXPECT_NE(r.message.find("could not write 1 of its chunks"), std::string::npos) << r.message;
}

// A header that promises a symbol section the file does not hold (cut off
// after `run` added it) is incomplete; with the section, complete.
TEST(TraceFormat, AMissingSymbolSectionIsIncomplete) {
  MemorySink sink;
  std::vector<uint8_t> bytes = SampleTrace(&sink);
  bytes[10] |= format::kHeaderHasSymbols;
  Recorder rec;
  TraceHeader h;
  std::string err;
  ReadResult cut = Read(bytes, &rec, &h, &err);
  EXPECT_EQ(cut.status, TraceStatus::kIncomplete);
  EXPECT_TRUE(cut.symbols_missing);
  EXPECT_EQ(cut.events_lost, 0u);
  SymbolizedAddress a;
  a.address = 0x401234;
  a.frames.push_back({"main", "prog.c", 7, "/usr/bin/prog", 0x1234, false});
  std::vector<uint8_t> section = EncodeSymbolSection({{"/usr/bin/prog", ""}}, {a});
  bytes.insert(bytes.end(), section.begin(), section.end());
  Recorder again;
  ReadResult whole = Read(bytes, &again, &h, &err);
  EXPECT_EQ(whole.status, TraceStatus::kComplete) << whole.message;
  EXPECT_FALSE(whole.symbols_missing);
}

TEST(TraceFormat, RejectsWhatIsNotAReadableTrace) {
  MemorySink sink;
  std::vector<uint8_t> good = SampleTrace(&sink);
  auto header_error = [](std::vector<uint8_t> bytes) {
    TraceReader reader(MemorySource(std::move(bytes)));
    TraceHeader h;
    std::string err;
    EXPECT_FALSE(reader.ReadHeader(&h, &err));
    return err;
  };
  EXPECT_NE(header_error({}).find("empty"), std::string::npos);
  EXPECT_NE(header_error({'h', 'e', 'l', 'l', 'o', '\n', 0, 0, 0}).find("not a pagewaste trace"),
            std::string::npos);
  std::vector<uint8_t> newer = good;
  newer[8] = format::kVersion + 1;
  EXPECT_NE(header_error(newer).find("version 7 is not supported (this build reads versions 2 to 6)"),
            std::string::npos);
  EXPECT_NE(header_error(newer).find("upgrade pagewaste"), std::string::npos);
  std::vector<uint8_t> older = good;
  older[8] = 1;
  EXPECT_NE(header_error(older).find("record the program again"), std::string::npos);
  // Version 2 differs only by lacking EndReason::kRawExit: still read.
  std::vector<uint8_t> v2 = good;
  v2[8] = 2;
  TraceReader v2_reader(MemorySource(std::move(v2)));
  TraceHeader v2_header;
  std::string v2_err;
  EXPECT_TRUE(v2_reader.ReadHeader(&v2_header, &v2_err)) << v2_err;
  // A "page" of 4 bytes (the fuzzer's find: the size-class model's shift
  // went negative): power of two, but no machine's page size.
  std::vector<uint8_t> tiny_page = good;
  tiny_page[12] = 4;
  tiny_page[13] = 0;
  EXPECT_NE(header_error(tiny_page).find("corrupt header: page size 4"), std::string::npos);
  std::vector<uint8_t> short_header(good.begin(), good.begin() + 20);
  EXPECT_NE(header_error(short_header).find("truncated header"), std::string::npos);
}

TEST(TraceFormat, DataAfterTheEndRecordIsCorrupt) {
  MemorySink sink;
  std::vector<uint8_t> bytes = SampleTrace(&sink);
  std::vector<uint8_t> extra = {1, 0, 0, 0, 1, 0, 0, 0,
                                static_cast<uint8_t>(format::RecordType::kModuleMap)};
  bytes.insert(bytes.end(), extra.begin(), extra.end());
  Recorder rec;
  TraceHeader h;
  std::string err;
  ReadResult r = Read(bytes, &rec, &h, &err);
  EXPECT_EQ(r.status, TraceStatus::kCorrupt);
  EXPECT_NE(r.message.find("after the end record"), std::string::npos);
}

// Hands out memory that stands for a shared mapping of the file, as the
// shim's file sink does: records are in "the file" as soon as they commit.
class MappedSink : public ChunkSink {
 public:
  MappedSink() : file(1 << 20, 0) {}
  uint8_t* NextChunk(size_t capacity) override {
    return end + capacity <= file.size() ? file.data() + end : nullptr;
  }
  bool FinishChunk(const uint8_t*, size_t size) override {
    end += size;
    return true;
  }
  std::vector<uint8_t> file;
  size_t end = 0;
};

TEST(TraceFormat, AProcessKilledMidRecordLosesNothingCommitted) {
  MappedSink sink;
  HeaderInfo h;
  h.process.page_size = 4096;
  sink.end = EncodeHeader(h, sink.file.data(), sink.file.size());
  static uint8_t fallback[RecordWriter::kMinBuffer];
  RecordWriter w(fallback, sizeof fallback, &sink);
  constexpr uint64_t kWritten = 1500;  // fills more than one chunk
  for (uint64_t i = 0; i < kWritten; ++i) {
    AllocEvent a;
    a.prefix = {i, 1, 0};
    a.address = 0x1000 + 64 * i;
    a.requested = 64;
    w.Alloc(a);
  }
  // The process dies here, in the middle of encoding one more record: its
  // first bytes are in the file after the open chunk's committed payload.
  uint8_t* torn = w.events() ? sink.file.data() + sink.end : nullptr;
  ASSERT_NE(torn, nullptr);
  uint32_t payload = torn[0] | torn[1] << 8 | torn[2] << 16;
  EXPECT_EQ(torn[4], 0) << "the current chunk is still open";
  uint8_t* after = torn + format::kChunkPrefixSize + payload;
  after[0] = static_cast<uint8_t>(format::RecordType::kAlloc);
  after[1] = 0xff;
  after[2] = 0xff;
  Recorder rec;
  TraceHeader header;
  std::string err;
  ReadResult r = Read(sink.file, &rec, &header, &err);
  ASSERT_EQ(err, "");
  EXPECT_EQ(r.status, TraceStatus::kTruncated) << r.message;
  EXPECT_EQ(rec.allocs.size(), kWritten);
  EXPECT_EQ(rec.allocs.back().address, 0x1000 + 64 * (kWritten - 1));
}

// Thread chunks as the shim lays them out: each reserved in the file when
// its writer starts it (so that the file holds them in the order they were
// started, not finished), with the low_seq the writer had then. Each
// thread's writer has a sink of its own over the one layout.
struct SharedLayout {
  std::vector<std::vector<uint8_t>> chunks;  // in reservation order
};
class LayoutSink : public ChunkSink {
 public:
  LayoutSink(SharedLayout* layout, const uint64_t* seq) : layout_(layout), seq_(seq) {}
  uint8_t* NextChunk(size_t) override {
    slot_ = layout_->chunks.size();
    layout_->chunks.emplace_back();
    return nullptr;
  }
  uint64_t LowSeq() override { return *seq_; }
  bool FinishChunk(const uint8_t* data, size_t size) override {
    layout_->chunks[slot_].assign(data, data + size);
    return true;
  }

 private:
  SharedLayout* layout_;
  const uint64_t* seq_;
  size_t slot_ = 0;
};

TEST(TraceFormat, ThreadChunksAreMergedBackIntoSequenceOrder) {
  HeaderInfo h;
  h.process.page_size = 4096;
  h.process.pid = 7;
  uint8_t header[1024];
  size_t n = EncodeHeader(h, header, sizeof header);
  MemorySink plain_sink;
  plain_sink.bytes.assign(header, header + n);
  static uint8_t plain_buffer[RecordWriter::kMinBuffer];
  RecordWriter plain(plain_buffer, sizeof plain_buffer, &plain_sink);
  plain.ModuleMap(1);
  plain.StackNodeAt(1, 0, 0x1000);  // the preamble: node 1, implicit
  plain.Flush();

  SharedLayout layout;
  uint64_t seq = 100;
  static uint8_t buffer_a[RecordWriter::kMinBuffer], buffer_b[RecordWriter::kMinBuffer];
  LayoutSink sink_a(&layout, &seq), sink_b(&layout, &seq);
  RecordWriter a(buffer_a, sizeof buffer_a, &sink_a), b(buffer_b, sizeof buffer_b, &sink_b);
  a.UseThreadChunks();
  b.UseThreadChunks();
  // Thread 20 writes node 3 (under node 2) before thread 10 writes node 2:
  // the reader holds 3 back until its parent comes.
  constexpr int kEvents = 3000;
  for (int i = 0; i < kEvents; ++i, ++seq) {
    bool on_b = i % 3 == 0;
    RecordWriter& w = on_b ? b : a;
    if (i == 0) b.StackNodeAt(3, 2, 0x3000);
    if (i == 1) a.StackNodeAt(2, 1, 0x2000);
    AllocEvent e;
    e.prefix = {static_cast<uint64_t>(i) * 1000, on_b ? 20u : 10u, on_b ? 3u : 2u, seq};
    e.address = 0x10000 + 16 * static_cast<uint64_t>(i);
    e.requested = 16;
    e.usable = 24;
    w.Alloc(e);
  }
  a.Flush();
  b.Flush();
  ASSERT_GT(layout.chunks.size(), 4u);  // several chunks of each thread, interleaved
  std::vector<uint8_t> bytes = plain_sink.bytes;
  for (const auto& chunk : layout.chunks) bytes.insert(bytes.end(), chunk.begin(), chunk.end());
  MemorySink end_sink;
  static uint8_t end_buffer[RecordWriter::kMinBuffer];
  RecordWriter end(end_buffer, sizeof end_buffer, &end_sink);
  end.AddCounts(plain);
  end.AddCounts(a);
  end.AddCounts(b);
  end.End(format::EndReason::kExit, 0, {});
  bytes.insert(bytes.end(), end_sink.bytes.begin(), end_sink.bytes.end());

  Recorder rec;
  TraceHeader got;
  std::string err;
  ReadResult r = Read(bytes, &rec, &got, &err);
  ASSERT_EQ(r.status, TraceStatus::kComplete) << r.message;
  ASSERT_EQ(rec.allocs.size(), static_cast<size_t>(kEvents));
  for (int i = 0; i < kEvents; ++i) {
    SCOPED_TRACE(i);
    const AllocEvent& e = rec.allocs[i];
    EXPECT_EQ(e.address, 0x10000 + 16 * static_cast<uint64_t>(i));
    EXPECT_EQ(e.prefix.seq, 100 + static_cast<uint64_t>(i));
    EXPECT_EQ(e.prefix.tid, i % 3 == 0 ? 20u : 10u);
    EXPECT_EQ(e.prefix.time_ns, static_cast<uint64_t>(i) * 1000);
  }
  std::vector<std::string> nodes;
  for (const std::string& line : rec.log)
    if (line.rfind("node", 0) == 0) nodes.push_back(line);
  EXPECT_EQ(nodes, (std::vector<std::string>{"node 1 0 4096", "node 2 1 8192", "node 3 2 12288"}));
}

TEST(TraceFormat, AThreadChunkRecordInAPlainChunkIsCorrupt) {
  MemorySink sink;
  HeaderInfo h;
  h.process.page_size = 4096;
  uint8_t header[1024];
  size_t n = EncodeHeader(h, header, sizeof header);
  sink.bytes.assign(header, header + n);
  // A plain chunk holding a StackNodeAt record.
  uint8_t chunk[] = {4, 0, 0, 0, format::kChunkFinished, 0, 0, 0,
                     static_cast<uint8_t>(format::RecordType::kStackNodeAt), 1, 0, 7};
  sink.bytes.insert(sink.bytes.end(), chunk, chunk + sizeof chunk);
  Recorder rec;
  TraceHeader got;
  std::string err;
  ReadResult r = Read(sink.bytes, &rec, &got, &err);
  EXPECT_EQ(r.status, TraceStatus::kCorrupt);
  EXPECT_NE(r.message.find("thread chunk's record"), std::string::npos) << r.message;
}

}  // namespace
}  // namespace pagewaste

namespace pagewaste {
namespace {

// Modules and nodes only: events skipped over, not decoded.
class StructureOnly : public Recorder {
 public:
  bool WantsEvents() const override { return false; }
};

TEST(TraceFormat, AStructureOnlyReadCountsWhatAFullReadDecodes) {
  MemorySink sink;
  std::vector<uint8_t> bytes = SampleTrace(&sink);
  Recorder full;
  StructureOnly structure;
  TraceHeader h;
  std::string err;
  ReadResult a = Read(bytes, &full, &h, &err);
  ReadResult b = Read(bytes, &structure, &h, &err);
  ASSERT_EQ(a.status, TraceStatus::kComplete) << a.message;
  EXPECT_EQ(b.status, TraceStatus::kComplete) << b.message;
  EXPECT_EQ(b.records, a.records);
  EXPECT_EQ(b.events, a.events);
  EXPECT_TRUE(structure.allocs.empty());
  std::vector<std::string> full_structure;
  for (const std::string& line : full.log)
    if (line.rfind("node", 0) == 0 || line.rfind("module", 0) == 0 || line == "end")
      full_structure.push_back(line);
  EXPECT_EQ(structure.log, full_structure);
  // Damage is still told apart from the end of the data.
  std::vector<uint8_t> cut(bytes.begin(), bytes.end() - 3);
  StructureOnly damaged;
  EXPECT_NE(Read(cut, &damaged, &h, &err).status, TraceStatus::kComplete);
}

}  // namespace
}  // namespace pagewaste
