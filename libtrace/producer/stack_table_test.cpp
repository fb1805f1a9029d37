// The stack table from memory: ids stay the same across the growth of its
// hash slots, shared outer frames share nodes, and each growth is counted.
#include "producer/stack_table.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace pagewaste::producer {
namespace {

// Takes the writer's finished chunks and keeps their bytes' count.
class CountingSink : public ChunkSink {
 public:
  uint8_t* NextChunk(size_t) override { return nullptr; }
  bool FinishChunk(const uint8_t*, size_t size) override {
    bytes += size;
    return true;
  }
  size_t bytes = 0;
};

TEST(StackTable, IdsSurviveTheSlotsGrowingAndEachGrowthIsCounted) {
  static StackTable table;  // large: the direct-mapped cache of recent edges
  ASSERT_TRUE(table.Init());
  CountingSink sink;
  std::vector<uint8_t> buffer(1 << 20);
  RecordWriter writer(buffer.data(), buffer.size(), &sink);

  // 40,000 stacks of two frames under one outer frame: 40,001 nodes. The
  // slots (4,096 at first) grow four times over when half full: at the
  // 2,049th node, the 8,193rd and the 32,769th.
  constexpr uintptr_t kOuter = 0x400000;
  std::vector<uint64_t> ids;
  for (uintptr_t i = 0; i < 40000; ++i) {
    uintptr_t ips[2] = {0x500000 + i * 16, kOuter};
    ids.push_back(table.Intern(ips, 2, &writer));
  }
  uintptr_t outer[1] = {kOuter};
  uint64_t outer_id = table.Intern(outer, 1, &writer);
  EXPECT_EQ(outer_id, 1u);  // the first node made
  for (uintptr_t i = 0; i < 40000; ++i) {
    uintptr_t ips[2] = {0x500000 + i * 16, kOuter};
    ASSERT_EQ(table.Intern(ips, 2, &writer), ids[i]) << i;
    // The same stack, its outer frame given as the parent.
    uintptr_t inner[1] = {0x500000 + i * 16};
    ASSERT_EQ(table.Intern(inner, 1, &writer, outer_id, nullptr), ids[i]) << i;
  }
  EXPECT_EQ(ids.front(), 2u);
  EXPECT_EQ(ids.back(), 40001u);
  SyscallCounts grew = table.syscalls();
  EXPECT_EQ(grew.count[static_cast<int>(format::SyscallKind::kMmap)], 3u);
  EXPECT_EQ(grew.count[static_cast<int>(format::SyscallKind::kMunmap)], 3u);
  table.ForgetSyscalls();
  EXPECT_EQ(table.syscalls().Total(), 0u);
}

}  // namespace
}  // namespace pagewaste::producer
