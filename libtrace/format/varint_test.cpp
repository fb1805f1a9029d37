// The varint encoding against hand-worked bytes, its limits and random round
// trips.
#include "varint.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "page_cost.h"

namespace pagewaste {
namespace {

std::vector<uint8_t> Encode(uint64_t v) {
  uint8_t buf[kMaxVarintBytes];
  return std::vector<uint8_t>(buf, buf + EncodeVarint(v, buf));
}

TEST(Varint, KnownEncodings) {
  EXPECT_EQ(Encode(0), (std::vector<uint8_t>{0x00}));
  EXPECT_EQ(Encode(127), (std::vector<uint8_t>{0x7f}));
  EXPECT_EQ(Encode(128), (std::vector<uint8_t>{0x80, 0x01}));
  EXPECT_EQ(Encode(300), (std::vector<uint8_t>{0xac, 0x02}));
  EXPECT_EQ(Encode(UINT64_MAX).size(), 10u);
}

TEST(Varint, RoundTripsRandomValues) {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 100000; ++i) {
    uint64_t v = rng() >> (rng() % 64);
    std::vector<uint8_t> bytes = Encode(v);
    const uint8_t* p = bytes.data();
    uint64_t out = 0;
    ASSERT_TRUE(DecodeVarint(&p, bytes.data() + bytes.size(), &out));
    EXPECT_EQ(out, v);
    EXPECT_EQ(p, bytes.data() + bytes.size());
  }
}

TEST(Varint, RejectsTruncatedAndOverlongInput) {
  std::vector<uint8_t> bytes = Encode(1ull << 40);
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    const uint8_t* p = bytes.data();
    uint64_t out;
    EXPECT_FALSE(DecodeVarint(&p, bytes.data() + cut, &out)) << cut;
    EXPECT_EQ(p, bytes.data());
  }
  // 11 continuation bytes, and a 10th byte carrying bits beyond 64.
  std::vector<uint8_t> overlong(11, 0x80);
  const uint8_t* p = overlong.data();
  uint64_t out;
  EXPECT_FALSE(DecodeVarint(&p, overlong.data() + overlong.size(), &out));
  std::vector<uint8_t> too_big = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
  p = too_big.data();
  EXPECT_FALSE(DecodeVarint(&p, too_big.data() + too_big.size(), &out));
}

TEST(ZigZag, MapsSmallMagnitudesToSmallCodes) {
  EXPECT_EQ(ZigZag(0), 0u);
  EXPECT_EQ(ZigZag(-1), 1u);
  EXPECT_EQ(ZigZag(1), 2u);
  EXPECT_EQ(ZigZag(-2), 3u);
  for (int64_t v : {INT64_MIN, INT64_MAX, int64_t{-123456789}, int64_t{987654321}})
    EXPECT_EQ(UnZigZag(ZigZag(v)), v);
}

TEST(PageCost, RoundsToWholePages) {
  EXPECT_EQ(PageBytes(0, 4096), 0u);
  EXPECT_EQ(PageBytes(1, 4096), 4096u);
  EXPECT_EQ(PageBytes(2, 4096), 4096u);
  EXPECT_EQ(PageBytes(4096, 4096), 4096u);
  EXPECT_EQ(PageBytes(4097, 4096), 8192u);
  EXPECT_EQ(PageWaste(2, 4096), 4094u);
  EXPECT_EQ(PageWaste(2, 16384), 16382u);
  EXPECT_EQ(PageWaste(2, 2u << 20), (2u << 20) - 2);
  EXPECT_EQ(PageWaste(8192, 4096), 0u);
  EXPECT_TRUE(IsPowerOfTwo(4096));
  EXPECT_FALSE(IsPowerOfTwo(4095));
  EXPECT_FALSE(IsPowerOfTwo(0));
}

}  // namespace
}  // namespace pagewaste
