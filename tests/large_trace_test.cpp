// A synthetic trace of 10 million events replays in memory bounded by its
// live set and unique stacks, not by its number of events.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <vector>

#include "e2e_support.h"
#include "record_writer.h"

namespace pagewaste::e2e {
namespace {

class FileChunks : public ChunkSink {
 public:
  explicit FileChunks(FILE* f) : f_(f) {}
  uint8_t* NextChunk(size_t) override { return nullptr; }
  bool FinishChunk(const uint8_t* data, size_t size) override {
    return fwrite(data, 1, size, f_) == size;
  }

 private:
  FILE* f_;
};

constexpr uint64_t kEvents = 10'000'000;
constexpr uint64_t kLive = 1000;  // blocks live at once

void WriteSyntheticTrace(const std::string& path) {
  FILE* f = fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  HeaderInfo h;
  h.process.page_size = 4096;
  h.process.pid = 1;
  h.exe = "/synthetic";
  std::vector<uint8_t> header(4096);
  fwrite(header.data(), 1, EncodeHeader(h, header.data(), header.size()), f);
  FileChunks sink(f);
  std::vector<uint8_t> buffer(256 << 10);
  RecordWriter w(buffer.data(), buffer.size(), &sink);
  // Ten call sites, each a two-frame stack.
  uint64_t stacks[10];
  for (int i = 0; i < 10; ++i) stacks[i] = w.StackNode(w.StackNode(0, 0x1000 + i), 0x2000 + i);
  // A ring of kLive live blocks: each step frees the oldest, allocates anew.
  for (uint64_t i = 0; i < kEvents / 2; ++i) {
    if (i >= kLive) {
      FreeEvent fr;
      fr.prefix = {2 * i, 7, 0};
      fr.address = 0x10000000 + ((i - kLive) % kLive) * 64;
      w.Free(fr);
    }
    AllocEvent a;
    a.prefix = {2 * i + 1, 7, stacks[i % 10]};
    a.address = 0x10000000 + (i % kLive) * 64;
    a.requested = 48;
    a.usable = 56;
    w.Alloc(a);
  }
  w.End(format::EndReason::kExit, 0, SyscallCounts());
  fclose(f);
}

TEST(LargeTrace, TenMillionEventsReplayInBoundedMemory) {
  TempDir dir;
  std::string path = dir.path() + "/synthetic.trace";
  WriteSyntheticTrace(path);
  auto start = std::chrono::steady_clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    freopen("/dev/null", "w", stdout);
    execl(PagewastePath().c_str(), "pagewaste", "report", "--format", "json", path.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  struct rusage usage;
  ASSERT_EQ(wait4(pid, &status, 0, &usage), pid);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  long max_rss_kib = usage.ru_maxrss;
  // Holding the events would take hundreds of megabytes; the live set (1000
  // blocks) and ten stacks take next to nothing.
  EXPECT_LT(max_rss_kib, 64 * 1024) << "peak RSS " << max_rss_kib << " KiB";
  std::printf("replayed %llu events in %.2f s (%.1f M events/s), peak RSS %ld KiB\n",
              static_cast<unsigned long long>(kEvents - kLive), seconds,
              static_cast<double>(kEvents - kLive) / seconds / 1e6, max_rss_kib);
}

}  // namespace
}  // namespace pagewaste::e2e
