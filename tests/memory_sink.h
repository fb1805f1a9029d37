// A chunk sink into a byte vector, the way the write(2) fallback takes
// finished chunks: what the tests write traces in memory with.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "producer/record_writer.h"

namespace pagewaste {

class MemorySink : public ChunkSink {
 public:
  uint8_t* NextChunk(size_t) override { return nullptr; }
  bool FinishChunk(const uint8_t* data, size_t size) override {
    if (fail_next) {
      fail_next = false;
      return false;
    }
    bytes.insert(bytes.end(), data, data + size);
    ++chunks;
    return true;
  }
  std::vector<uint8_t> bytes;
  int chunks = 0;
  bool fail_next = false;  // the next chunk is not taken
};

}  // namespace pagewaste
