// Traces of a few kilobytes crafted to cost gigabytes: each is refused with
// one line and exit 4, or reported in bounded memory, never a report that
// takes the machine. Every one runs under a 1 GiB address-space limit
// (ulimit -v) and a minute of CPU, as an attacker's input would be met in
// CI.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zstd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "e2e_support.h"
#include "format/expansion_limit.h"
#include "format/little_endian.h"
#include "producer/record_writer.h"
#include "reader/symbol_section.h"
#include "format/varint.h"

namespace pagewaste::e2e {
namespace {

// Collects a writer's chunks in memory.
class Chunks : public ChunkSink {
 public:
  uint8_t* NextChunk(size_t) override { return nullptr; }
  bool FinishChunk(const uint8_t* data, size_t size) override {
    bytes.insert(bytes.end(), data, data + size);
    return true;
  }
  uint64_t LowSeq() override { return low_seq; }
  std::vector<uint8_t> bytes;
  uint64_t low_seq = 0;
};

enum class Packing {
  kPlain,
  kCompressed,  // as `run` compresses: within the reader's expansion limit
  kBomb,        // zstd frames as small as they go: a decompression bomb
};

// A trace made record by record, written out plain or compressed.
class CraftedTrace {
 public:
  CraftedTrace() : buffer_(256 << 10), writer_(buffer_.data(), buffer_.size(), &chunks_) {}
  RecordWriter& writer() { return writer_; }
  Chunks& chunks() { return chunks_; }
  // Appends bytes after the chunks written (a symbol section).
  void Append(const std::vector<uint8_t>& bytes) {
    chunks_.bytes.insert(chunks_.bytes.end(), bytes.begin(), bytes.end());
  }
  void WriteTo(const std::string& path, Packing packing, uint16_t header_flags = 0) const {
    HeaderInfo h;
    h.process.page_size = 4096;
    h.process.pid = 1;
    h.exe = "/crafted";
    std::vector<uint8_t> header(4096);
    header.resize(EncodeHeader(h, header.data(), header.size()));
    PutLE(header.data() + 10, header_flags, 2);
    FILE* f = fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    fwrite(header.data(), 1, header.size(), f);
    if (packing == Packing::kPlain) {
      fwrite(chunks_.bytes.data(), 1, chunks_.bytes.size(), f);
    } else {
      // Groups of whole chunks, 8 MiB or so each, one zstd frame each.
      size_t at = 0;
      const std::vector<uint8_t>& in = chunks_.bytes;
      while (at < in.size()) {
        size_t end = at;
        while (end < in.size() && end - at < (8u << 20)) {
          uint32_t payload = static_cast<uint32_t>(GetLE(in.data() + end, 4));
          end += format::kChunkPrefixSize + payload;
        }
        std::vector<uint8_t> out(ZSTD_compressBound(end - at) + 64);
        size_t n = ZSTD_compress(out.data(), out.size(), in.data() + at, end - at, 3);
        ASSERT_FALSE(ZSTD_isError(n));
        if (packing == Packing::kCompressed) {
          size_t pad = ExpansionPadding(4 + n, end - at);
          out.resize(n + pad + 64);
          if (pad) WriteSkippableFrame(out.data() + n, pad);
          n += pad;
        }
        uint8_t prefix[format::kChunkPrefixSize + 4];
        PutLE(prefix, 4 + n, 4);
        PutLE(prefix + 4, format::kChunkFinished | format::kChunkZstd, 4);
        PutLE(prefix + 8, end - at, 4);
        fwrite(prefix, 1, sizeof prefix, f);
        fwrite(out.data(), 1, n, f);
        at = end;
      }
    }
    fclose(f);
  }

 private:
  Chunks chunks_;
  std::vector<uint8_t> buffer_;
  RecordWriter writer_;
};

struct Outcome {
  int exit_code = -1;  // 128+N for signal N
  std::string err;
  std::string out;
  long max_rss_kib = 0;
  double seconds = 0;
};

// `pagewaste ARGS...` under a 1 GiB address space and 60 s of CPU. Under
// AddressSanitizer, whose shadow memory needs terabytes of address space,
// only the CPU limit holds.
Outcome RunLimited(const TempDir& dir, const std::vector<std::string>& args) {
  Outcome o;
  std::string out = dir.path() + "/limited.out", err = dir.path() + "/limited.err";
  auto start = std::chrono::steady_clock::now();
  pid_t pid = fork();
  if (pid == 0) {
#ifndef PAGEWASTE_SANITIZED
    struct rlimit as = {1ul << 30, 1ul << 30};
    setrlimit(RLIMIT_AS, &as);
#else
    // Freed memory waits in AddressSanitizer's quarantine: not the report's.
    const char* asan = getenv("ASAN_OPTIONS");
    std::string options = std::string(asan ? asan : "") + ":quarantine_size_mb=1";
    setenv("ASAN_OPTIONS", options.c_str(), 1);
#endif
    struct rlimit cpu = {60, 60};
    setrlimit(RLIMIT_CPU, &cpu);
    if (!freopen(out.c_str(), "w", stdout) || !freopen(err.c_str(), "w", stderr)) _exit(126);
    std::vector<char*> argv = {const_cast<char*>("pagewaste")};
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(PagewastePath().c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  struct rusage usage;
  if (wait4(pid, &status, 0, &usage) != pid) return o;
  o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  o.max_rss_kib = usage.ru_maxrss;
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  o.out = RunCapture({"cat", out}).out;
  o.err = RunCapture({"cat", err}).out;
  return o;
}

// The most a refusal or a bounded report may hold. AddressSanitizer's
// redzones and shadow about double what a sanitized build holds.
#ifndef PAGEWASTE_SANITIZED
constexpr long kRssBoundKib = 512 * 1024;
#else
constexpr long kRssBoundKib = 1024 * 1024;
#endif

int Lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

// Makes the trace NAME in dir in a child process, so that the memory it
// takes to make does not count as the report's (a child's peak RSS starts
// at its parent's): write(t) writes its records, then it is written out
// packed so. Returns its path.
template <typename Write>
std::string MakeTrace(const TempDir& dir, const std::string& name, Packing packing,
                      uint16_t header_flags, Write write) {
  std::string path = dir.path() + "/" + name;
  pid_t pid = fork();
  if (pid == 0) {
    CraftedTrace t;
    write(t);
    t.WriteTo(path, packing, header_flags);
    _exit(testing::Test::HasFailure() ? 1 : 0);
  }
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "making " << name;
  return path;
}

// report (text and JSON) and dump of a trace that must be refused: exit 4,
// the reason in its one line of stderr.
void ExpectRefused(const TempDir& dir, const std::string& path, const std::string& reason) {
  for (std::vector<std::string> args : {std::vector<std::string>{"report", path},
                                        {"report", "--format", "json", path},
                                        {"dump", path}}) {
    SCOPED_TRACE(args[0] + " " + args[1]);
    Outcome o = RunLimited(dir, args);
    EXPECT_EQ(o.exit_code, 4) << o.err;
    EXPECT_NE(o.err.find(reason), std::string::npos) << o.err;
    EXPECT_EQ(Lines(o.err), 1) << o.err;
    EXPECT_LT(o.seconds, 30) << o.err;
    EXPECT_LT(o.max_rss_kib, kRssBoundKib);
    std::printf("%s: %.2f s, peak RSS %ld KiB\n", args[0].c_str(), o.seconds, o.max_rss_kib);
  }
}

// Churn chunks (one block allocated and freed, again and again) in zstd
// frames that expand tens of thousands of times: a few KB that would be
// replayed for minutes. The first such chunk is refused.
TEST(CraftedTraces, ADecompressionBombIsRefusedAtItsFirstChunk) {
  TempDir dir;
  std::string path = MakeTrace(dir, "bomb.trace", Packing::kBomb, 0, [&](CraftedTrace& t) {
    RecordWriter& w = t.writer();
    uint64_t stack = w.StackNode(0, 0x401000);
    for (uint64_t i = 0; i < 6'000'000; ++i) {
      w.AllocSmall({0, 7, stack, 0}, 0x10000, 48, 56);
      w.FreeSmall({0, 7, 0, 0}, 0x10000);
    }
    w.End(format::EndReason::kExit, 0, SyscallCounts());
  });
  EXPECT_LT(std::filesystem::file_size(path), 10'000'000u);
  ExpectRefused(dir, path, "as no trace does (a decompression bomb)");
}

// A live set that grows by a new address base in every chunk, packed as an
// attacker would: refused by its expansion, before the live set grows.
TEST(CraftedTraces, ALiveSetGrowingInEveryChunkIsRefusedByItsExpansion) {
  TempDir dir;
  std::string path = MakeTrace(dir, "live.trace", Packing::kBomb, 0, [&](CraftedTrace& t) {
    RecordWriter& w = t.writer();
    uint64_t stack = w.StackNode(0, 0x401000);
    for (uint64_t i = 0; i < 8'000'000; ++i)
      w.AllocSmall({0, 7, stack, 0}, 0x10000000 + (i / 16384) * (1ull << 32) + 16 * (i % 16384), 8,
                   16);
    w.End(format::EndReason::kExit, 0, SyscallCounts());
  });
  ExpectRefused(dir, path, "a decompression bomb");
}

// The same stack node id twice, its parent never coming: refused at the
// second, not held a million times.
TEST(CraftedTraces, TheSameStackNodeIdTwiceIsRefused) {
  TempDir dir;
  std::string path = MakeTrace(dir, "orphans.trace", Packing::kCompressed, 0, [&](CraftedTrace& t) {
    RecordWriter& w = t.writer();
    w.UseThreadChunks();
    for (int i = 0; i < 1'000'000; ++i) w.StackNodeAt(5, 4, 0x401000);
    w.Flush();
  });
  ExpectRefused(dir, path, "a stack node with a bad id");
}

// Thread chunks whose low_seq never rises: every chunk would be held for
// the end. Refused past 256 MiB held.
TEST(CraftedTraces, ThreadChunksThatNeverLetGoAreRefused) {
  TempDir dir;
  std::string path = MakeTrace(dir, "low_seq.trace", Packing::kCompressed, 0, [&](CraftedTrace& t) {
    RecordWriter& w = t.writer();
    w.UseThreadChunks();
    t.chunks().low_seq = 0;
    for (uint64_t i = 0; i < 40'000'000; ++i) {
      AllocEvent a;
      a.prefix = {0, 7, 0, 1 + i};
      a.address = 0x10000 + 16 * (i % 1024);
      a.requested = 8;
      a.usable = 16;
      a.alignment = 32;  // not the compact form: more bytes a chunk
      w.Alloc(a);
    }
    w.Flush();
  });
  ExpectRefused(dir, path, "MiB of thread chunks waiting for their events' turn");
}

// A symbol section of 3,000 addresses of 64 frames, each naming 4 KB
// strings: 6 KB that would be gigabytes of names. Refused.
TEST(CraftedTraces, ASymbolSectionOfHugeNamesIsRefused) {
  TempDir dir;
  std::string path = MakeTrace(dir, "symbols.trace", Packing::kPlain, format::kHeaderHasSymbols,
                               [&](CraftedTrace& t) {
    RecordWriter& w = t.writer();
    w.Mmap(MmapEvent{{1, 7, w.StackNode(0, 0x401000)}, 0x7f0000000000, 2, 3, 0x22, -1});
    w.End(format::EndReason::kExit, 0, SyscallCounts());
    // The records by hand: three strings of 4,000 bytes, named by every frame.
    std::vector<uint8_t> plain;
    auto number = [&](uint64_t v) {
      uint8_t buf[kMaxVarintBytes];
      plain.insert(plain.end(), buf, buf + EncodeVarint(v, buf));
    };
    for (char c : {'f', 'c', 'm'}) {
      plain.push_back(static_cast<uint8_t>(format::SymbolRecordType::kString));
      number(4000);
      plain.insert(plain.end(), 4000, static_cast<uint8_t>(c));
    }
    for (uint64_t i = 0; i < 3000; ++i) {
      plain.push_back(static_cast<uint8_t>(format::SymbolRecordType::kAddress));
      number(0x401000 + i);
      number(64);
      for (int f = 0; f < 64; ++f) {
        for (uint64_t v : {1, 2, 1, 3, 0x1000}) number(v);
        plain.push_back(f > 0);
      }
    }
    std::vector<uint8_t> frame(ZSTD_compressBound(plain.size()));
    size_t n = ZSTD_compress(frame.data(), frame.size(), plain.data(), plain.size(), 3);
    ASSERT_FALSE(ZSTD_isError(n));
    std::vector<uint8_t> chunk(format::kChunkPrefixSize + 4);
    PutLE(chunk.data(), 4 + n, 4);
    PutLE(chunk.data() + 4, format::kChunkFinished | format::kChunkSymbols, 4);
    PutLE(chunk.data() + 8, plain.size(), 4);
    chunk.insert(chunk.end(), frame.begin(), frame.begin() + static_cast<ptrdiff_t>(n));
    t.Append(chunk);
  });
  ExpectRefused(dir, path, "a symbol section naming more than 256 MiB in its frames");
}

// More distinct modules than any process maps: refused.
TEST(CraftedTraces, MoreModulesThanTheFormatAllowsAreRefused) {
  TempDir dir;
  std::string path = MakeTrace(dir, "modules.trace", Packing::kCompressed, 0, [&](CraftedTrace& t) {
    RecordWriter& w = t.writer();
    w.ModuleMap(1);
    for (uint64_t i = 0; i <= (1u << 16); ++i) {
      ModuleSegment code{0x400000 + i * 0x10000, 0x1000};
      w.Module(i * 0x10000, &code, 1, "/usr/lib/x86_64-linux-gnu/libc.so.6", "");
    }
    w.End(format::EndReason::kExit, 0, SyscallCounts());
  });
  ExpectRefused(dir, path, "more than 65536 distinct modules");
}

// One file loaded at a hundred addresses, every one of them in the stacks:
// symbolized once (libdw holds one copy of the file), and each address
// named by it.
TEST(CraftedTraces, OneFileAtAHundredAddressesIsReadOnce) {
  TempDir dir;
  std::string pagewaste = PagewastePath();
  std::string path =
      MakeTrace(dir, "one_file.trace", Packing::kCompressed, 0, [&](CraftedTrace& t) {
    RecordWriter& w = t.writer();
    w.ModuleMap(1);
    for (uint64_t i = 0; i < 100; ++i) {
      ModuleSegment code{0x10000000 + i * 0x10000000, 0x8000000};
      w.Module(0x10000000 + i * 0x10000000, &code, 1, pagewaste.c_str(), "");
    }
    for (uint64_t i = 0; i < 100; ++i) {
      MmapEvent m{{1, 7, w.StackNode(0, 0x10000000 + i * 0x10000000 + 0x1000 + 16 * i)},
                  0x7f0000000000 + 0x1000 * i, 2, 3, 0x22, -1};
      w.Mmap(m);
    }
    w.End(format::EndReason::kExit, 0, SyscallCounts());
  });
  Outcome o = RunLimited(dir, {"report", "--format", "json", path});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  nlohmann::json r = ParseReport(o.out);
  EXPECT_EQ(r["summary"]["mappings"], 100);
  EXPECT_EQ(r["call_sites"].size(), 100u);
  for (const nlohmann::json& site : r["call_sites"])
    EXPECT_EQ(site["frames"][0]["module"], pagewaste);
  EXPECT_LT(o.max_rss_kib, kRssBoundKib);
}

// A million thread ids: the report lists the 64 busiest and sums the rest,
// instead of a table (and a JSON document) per thread.
TEST(CraftedTraces, AMillionThreadsAreCountedNotListed) {
  TempDir dir;
  std::string path = MakeTrace(dir, "threads.trace", Packing::kCompressed, 0, [&](CraftedTrace& t) {
    RecordWriter& w = t.writer();
    uint64_t stack = w.StackNode(0, 0x401000);
    for (uint32_t tid = 1; tid <= 1'000'000; ++tid)
      w.AllocSmall({0, tid, stack, 0}, 0x10000 + 16 * uint64_t{tid}, 8, 16);
    w.End(format::EndReason::kExit, 0, SyscallCounts());
  });
  Outcome o = RunLimited(dir, {"report", "--format", "json", path});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  nlohmann::json r = ParseReport(o.out);
  EXPECT_EQ(r["process"]["threads"], 1'000'000);
  EXPECT_EQ(r["threads"].size(), 64u);
  EXPECT_EQ(r["other_threads"]["threads"], 1'000'000 - 64);
  EXPECT_EQ(r["other_threads"]["allocations"], 1'000'000 - 64);
  EXPECT_LT(o.out.size(), 1u << 20);
  EXPECT_LT(o.max_rss_kib, kRssBoundKib);
  std::printf("%.2f s, peak RSS %ld KiB\n", o.seconds, o.max_rss_kib);
}

// Every stack node id the format allows, and two million sites on them:
// what the trace could hold, met with one line (exit 4 or, past the
// memory limit, 125), never an abort.
TEST(CraftedTraces, TheMostStackNodesAndSitesEndInOneLine) {
#ifdef PAGEWASTE_SANITIZED
  GTEST_SKIP() << "what it shows is the end at a 1 GiB address space, which a sanitized build "
                  "cannot have";
#endif
  TempDir dir;
  std::string path = MakeTrace(dir, "nodes.trace", Packing::kCompressed, 0, [&](CraftedTrace& t) {
    RecordWriter& w = t.writer();
    std::vector<uint64_t> leaves;
    for (uint64_t i = 0; i < format::kMaxStackNodeId / 8; ++i) {
      uint64_t node = 0;
      for (int depth = 0; depth < 8; ++depth) node = w.StackNode(node, 0x401000 + 16 * depth);
      if (i % 4 == 0) leaves.push_back(node);
    }
    for (uint64_t i = 0; i < leaves.size(); ++i)
      w.AllocSmall({0, 7, leaves[i], 0}, 0x10000 + 16 * i, 8, 16);
    w.End(format::EndReason::kExit, 0, SyscallCounts());
  });
  Outcome o = RunLimited(dir, {"report", "--format", "json", path});
  EXPECT_TRUE(o.exit_code == 0 || o.exit_code == 4 || o.exit_code == 125) << o.err;
  if (o.exit_code != 0) EXPECT_EQ(Lines(o.err), 1) << o.err;
  EXPECT_LT(o.seconds, 60) << o.err;
  std::printf("exit %d, %.2f s, peak RSS %ld KiB: %s", o.exit_code, o.seconds, o.max_rss_kib,
              o.err.c_str());
}

// Root reporting on another user's trace reads its modules as that user
// could: a crafted trace naming a file only root may read gets no names
// from it. The same trace owned by root does.
TEST(CraftedTraces, RootReadsModulesOnlyAsTheTracesOwnerCould) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  TempDir dir;
  std::string hidden = dir.path() + "/root_only";
  ASSERT_EQ(mkdir(hidden.c_str(), 0700), 0);
  std::string module = hidden + "/mmap_two_bytes";
  ASSERT_EQ(RunCapture({"cp", ProgramPath("mmap_two_bytes"), module}).exit_code, 0);
  chmod(dir.path().c_str(), 0755);
  CommandResult nm = RunCapture({"sh", "-c", "nm " + module + " | grep ' T main$'"});
  ASSERT_EQ(nm.exit_code, 0) << nm.err;
  uint64_t main_offset = std::stoull(nm.out.substr(0, nm.out.find(' ')), nullptr, 16);
  std::string path = MakeTrace(dir, "module.trace", Packing::kPlain, 0, [&](CraftedTrace& t) {
    RecordWriter& w = t.writer();
    constexpr uint64_t kBias = 0x555500000000;
    ModuleSegment all{kBias, 0x100000};
    w.ModuleMap(1);
    w.Module(kBias, &all, 1, module.c_str(), "");
    uint64_t stack = w.StackNode(0, kBias + main_offset + 4);
    w.Mmap(MmapEvent{{1, 7, stack}, 0x7f0000000000, 2, 3, 0x22, -1});
    w.End(format::EndReason::kExit, 0, SyscallCounts());
  });
  ASSERT_EQ(chown(path.c_str(), 65534, 65534), 0);
  CommandResult theirs = RunCapture({PagewastePath(), "report", path});
  EXPECT_EQ(theirs.exit_code, 0) << theirs.err;
  EXPECT_NE(theirs.out.find("WARNING   " + module + ": the trace's owner (uid 65534) may not read "
                            "it, so neither does this report"),
            std::string::npos)
      << theirs.out;
  EXPECT_EQ(theirs.out.find("main ("), std::string::npos) << theirs.out;
  ASSERT_EQ(chown(path.c_str(), 0, 0), 0);
  CommandResult ours = RunCapture({PagewastePath(), "report", path});
  EXPECT_EQ(ours.exit_code, 0) << ours.err;
  EXPECT_NE(ours.out.find("main (" + std::string(PAGEWASTE_TEST_SOURCES) + "/mmap_two_bytes.c:"),
            std::string::npos)
      << ours.out;
}

// Names that are not UTF-8 (a trace's paths, arguments and symbols are
// bytes): the pprof profile carries them as U+FFFD, as protobuf strings
// must, and `go tool pprof` reads it; the CI formats write them so too.
TEST(CraftedTraces, NamesThatAreNotUtf8MakeAValidProfile) {
  if (RunCapture({"sh", "-c", "command -v go"}).exit_code != 0)
    GTEST_SKIP() << "no go to read the profile (apt-get install golang-go)";
  TempDir dir;
  std::string path = MakeTrace(dir, "names.trace", Packing::kPlain, format::kHeaderHasSymbols,
                               [&](CraftedTrace& t) {
    RecordWriter& w = t.writer();
    w.Mmap(MmapEvent{{1, 7, w.StackNode(0, 0x401000)}, 0x7f0000000000, 2, 3, 0x22, -1});
    w.End(format::EndReason::kExit, 0, SyscallCounts());
    SymbolizedAddress a;
    a.address = 0x401000;
    a.frames.push_back({"page\xff\xfe" "alloc", "src/a\xc0.c", 7, "/crafted\x80", 0x1000, false});
    t.Append(EncodeSymbolSection({{"/crafted\x80", ""}}, {a}));
  });
  // The CI formats written as UTF-8 too (iconv checks it): JUnit XML,
  // Markdown and GitHub annotations.
  std::string junit = dir.path() + "/junit.xml", markdown = dir.path() + "/check.md";
  CommandResult check = RunCapture({PagewastePath(), "check", "--max-page-waste", "0", "--junit",
                                    junit, "--markdown", markdown, "--github", path});
  EXPECT_EQ(check.exit_code, 1) << check.err;
  std::string annotations = dir.path() + "/annotations.txt";
  { std::ofstream(annotations) << check.out; }
  for (const std::string& file : {junit, markdown, annotations}) {
    EXPECT_EQ(RunCapture({"iconv", "-f", "UTF-8", "-t", "UTF-8", file}).exit_code, 0) << file;
    EXPECT_NE(RunCapture({"cat", file}).out.find("page\xef\xbf\xbd\xef\xbf\xbd" "alloc"),
              std::string::npos)
        << file;
  }
  std::string profile = dir.path() + "/profile.pb.gz";
  CommandResult r =
      RunCapture({PagewastePath(), "report", "--format", "pprof", "-o", profile, path});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");  // no complaint from protobuf about its strings
  CommandResult top = RunCapture({"go", "tool", "pprof", "-top", profile});
  EXPECT_EQ(top.exit_code, 0) << top.err;
  EXPECT_NE(top.out.find("page\xef\xbf\xbd\xef\xbf\xbd" "alloc"), std::string::npos) << top.out;
}

}  // namespace
}  // namespace pagewaste::e2e
