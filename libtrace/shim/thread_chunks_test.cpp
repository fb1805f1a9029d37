// The shim's trace (trace.h) written by many threads at once, the way a
// program's threads write it, and read back: every event there, in the
// order the threads took their seqs, and a free recorded on another thread
// after the allocation it frees. Built with ThreadSanitizer by `make
// check-thread`, which is what it is for: the thread chunks are written
// without a lock, and only a race detector sees a race that happens to
// give the right bytes. Each test runs in a process of its own (ctest), as
// the shim's one trace lives once per process.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "format/clock.h"
#include "reader/trace_reader.h"
#include "shim/trace.h"

namespace pagewaste::shim {
namespace {

constexpr int kThreads = 16;
constexpr int kRounds = 4;  // threads exit and the next round reuses their slots
constexpr uint64_t kEventsPerThread = 20000;

// An address that says which thread allocated it and which of its events
// it was.
uint64_t AddressOf(uint64_t thread, uint64_t i) { return (thread + 1) << 32 | (i + 1) << 4; }
uint64_t ThreadOf(uint64_t address) { return (address >> 32) - 1; }
uint64_t IndexOf(uint64_t address) { return ((address & 0xffffffff) >> 4) - 1; }

class ThreadChunks : public ::testing::TestWithParam<bool> {
 protected:
  // Starts g_trace on a file in a directory of the test's own, mapped or
  // written (PAGEWASTE_SINK=write) as the parameter says.
  void SetUp() override {
    // The shim's trace starts once in a process; ctest runs each test in
    // one of its own.
    static bool started = false;
    if (started) GTEST_SKIP() << "the trace has run in this process: run one test per process";
    started = true;
    char tmpl[] = "/tmp/pagewaste-thread-chunks-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    pattern_ = dir_ + "/stress.trace";
    ProcessInfo& info = g_trace.mutable_info();
    info.pid = static_cast<uint32_t>(getpid());
    info.start_monotonic_ns = CoarseMonotonicNs();
    info.started_ns = MonotonicNs();
    info.pattern = pattern_.c_str();
    info.use_mapping = GetParam();
    info.exe_name = "stress";
    ASSERT_TRUE(g_trace.ClaimStart());
    ASSERT_EQ(g_trace.Open(), Trace::OpenResult::kOpen);
    ASSERT_TRUE(g_trace.Begin(1));
    g_trace.Resume();
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // Reads the trace back: every event's address, in the order delivered.
  struct Delivered : RecordVisitor {
    void OnAlloc(const AllocEvent& e) override {
      seqs.push_back(e.prefix.seq);
      allocs.push_back(e.address);
      order.push_back(e.address);
      if (e.prefix.stack) ++with_stack;
    }
    void OnFree(const FreeEvent& e) override {
      seqs.push_back(e.prefix.seq);
      frees.push_back(e.address);
      order.push_back(~e.address);  // a free, told from an alloc
    }
    std::vector<uint64_t> seqs, allocs, frees, order;
    uint64_t with_stack = 0;
  };
  ReadResult ReadBack(Delivered* delivered) {
    std::string err;
    TraceReader reader(OpenFileSource(pattern_, &err));
    TraceHeader header;
    EXPECT_TRUE(reader.ReadHeader(&header, &err)) << err;
    return reader.ReadRecords(delivered);
  }

  std::string dir_, pattern_;
};

// One thread's allocations `first` to `first + count`: a stack now and then
// (the shared stack table, under its lock, with StackNodeAt records in the
// thread's chunk); `done` counts them.
void Allocate(uint64_t thread, uint64_t first, uint64_t count,
              std::atomic<uint64_t>* done = nullptr) {
  for (uint64_t i = first; i < first + count; ++i) {
    g_trace.Record([&](RecordWriter& writer, uint32_t tid, uint64_t seq) {
      uint64_t stack = 0;
      if (i % 64 == 0) {
        uintptr_t ips[3] = {0x401000 + thread, 0x402000 + i % 7, 0x403000};
        uint64_t ids[3] = {};
        stack = g_trace.InternStack(&writer, ips, 3, 0, ids);
      }
      writer.AllocSmall({g_trace.NowNs(), tid, stack, seq}, AddressOf(thread, i), 16, 24);
    });
    if (done) done->store(i + 1, std::memory_order_release);
  }
}

TEST_P(ThreadChunks, ManyThreadsGiveEveryEventInSeqOrder) {
  for (int round = 0; round < kRounds; ++round) {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([round, t] { Allocate(round * kThreads + t, 0, kEventsPerThread); });
    for (auto& thread : threads) thread.join();
  }
  g_trace.End(format::EndReason::kExit, 0);

  Delivered delivered;
  ReadResult result = ReadBack(&delivered);
  ASSERT_EQ(result.status, TraceStatus::kComplete) << result.message;
  const uint64_t total = kRounds * kThreads * kEventsPerThread;
  ASSERT_EQ(delivered.allocs.size(), total);
  EXPECT_EQ(result.end.events, total);
  EXPECT_EQ(delivered.with_stack, kRounds * kThreads * ((kEventsPerThread + 63) / 64));
  // Seqs 1, 2, 3, ...: every event, each once, in the order taken.
  for (uint64_t i = 0; i < total; ++i) ASSERT_EQ(delivered.seqs[i], i + 1) << "event " << i;
  // Each thread's events in its own order.
  std::vector<uint64_t> next(kRounds * kThreads, 0);
  for (uint64_t address : delivered.allocs) {
    uint64_t thread = ThreadOf(address);
    ASSERT_LT(thread, next.size());
    ASSERT_EQ(IndexOf(address), next[thread]) << "thread " << thread;
    ++next[thread];
  }
}

// Producers allocate and hand each block to a consumer thread, which frees
// it as the shim records a free: its seq held before the real call
// (HoldSeq), the record written after. Every free comes after the
// allocation it frees.
TEST_P(ThreadChunks, FreeOnAnotherThreadFollowsItsAllocation) {
  constexpr int kPairs = 8;
  constexpr uint64_t kBlocks = 40000;
  struct Queue {
    std::mutex lock;
    std::deque<uint64_t> blocks;
    bool closed = false;
  };
  std::vector<Queue> queues(kPairs);
  std::vector<std::thread> threads;
  for (int p = 0; p < kPairs; ++p) {
    threads.emplace_back([&queues, p] {
      for (uint64_t i = 0; i < kBlocks; ++i) {
        uint64_t address = AddressOf(p, i);
        g_trace.Record([&](RecordWriter& writer, uint32_t tid, uint64_t seq) {
          writer.AllocSmall({g_trace.NowNs(), tid, 0, seq}, address, 32, 40);
        });
        std::lock_guard<std::mutex> hold(queues[p].lock);
        queues[p].blocks.push_back(address);
      }
      std::lock_guard<std::mutex> hold(queues[p].lock);
      queues[p].closed = true;
    });
    threads.emplace_back([&queues, p] {
      for (;;) {
        uint64_t address = 0;
        {
          std::lock_guard<std::mutex> hold(queues[p].lock);
          if (queues[p].blocks.empty()) {
            if (queues[p].closed) return;
          } else {
            address = queues[p].blocks.front();
            queues[p].blocks.pop_front();
          }
        }
        if (!address) {
          std::this_thread::yield();
          continue;
        }
        uint64_t held = g_trace.HoldSeq();  // before the real free
        g_trace.Record(
            [&](RecordWriter& writer, uint32_t tid, uint64_t seq) {
              writer.FreeSmall({g_trace.NowNs(), tid, 0, seq}, address);
            },
            held);
        g_trace.ReleaseSeq();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  g_trace.End(format::EndReason::kExit, 0);

  Delivered delivered;
  ReadResult result = ReadBack(&delivered);
  ASSERT_EQ(result.status, TraceStatus::kComplete) << result.message;
  ASSERT_EQ(delivered.allocs.size(), kPairs * kBlocks);
  ASSERT_EQ(delivered.frees.size(), kPairs * kBlocks);
  std::unordered_set<uint64_t> live;
  for (uint64_t entry : delivered.order) {
    if (ThreadOf(entry) < kPairs) {
      ASSERT_TRUE(live.insert(entry).second);
    } else {
      ASSERT_EQ(live.erase(~entry), 1u) << "a free of " << std::hex << ~entry
                                        << " before its allocation";
    }
  }
  EXPECT_TRUE(live.empty());
}

// The program exits while its threads are still allocating: the trace is
// complete, and each thread's events are a first part of its own, with
// none missing in between (a thread stops at the first record it finds the
// trace ended for).
TEST_P(ThreadChunks, EndWhileThreadsRecordKeepsWholeRecords) {
  std::vector<std::atomic<uint64_t>> done(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&done, t] {
      for (uint64_t first = 0; g_trace.tracing(); first += 500) Allocate(t, first, 500, &done[t]);
    });
  // Until every thread has recorded a few hundred events.
  for (int t = 0; t < kThreads; ++t)
    while (done[t].load(std::memory_order_acquire) < 400) std::this_thread::yield();
  g_trace.End(format::EndReason::kExit, 0);
  for (auto& thread : threads) thread.join();

  Delivered delivered;
  ReadResult result = ReadBack(&delivered);
  ASSERT_EQ(result.status, TraceStatus::kComplete) << result.message;
  EXPECT_EQ(result.end.events, delivered.allocs.size());
  // In the order taken; a seq is missing only where a thread had taken it
  // when the End came, and then did not write: one a thread at most.
  for (uint64_t i = 1; i < delivered.seqs.size(); ++i)
    ASSERT_LT(delivered.seqs[i - 1], delivered.seqs[i]) << "event " << i;
  ASSERT_FALSE(delivered.seqs.empty());
  EXPECT_LE(delivered.seqs.back() - delivered.seqs.size(), uint64_t{kThreads});
  std::vector<uint64_t> next(kThreads, 0);
  for (uint64_t address : delivered.allocs) {
    uint64_t thread = ThreadOf(address);
    ASSERT_LT(thread, next.size());
    ASSERT_EQ(IndexOf(address), next[thread]) << "thread " << thread;
    ++next[thread];
  }
  for (int t = 0; t < kThreads; ++t) EXPECT_GE(next[t], 400u) << "thread " << t;
}

INSTANTIATE_TEST_SUITE_P(Sinks, ThreadChunks, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "mapped" : "written"; });

}  // namespace
}  // namespace pagewaste::shim
