// A churn that looks like a program's: 1,024 blocks of 16 to 1,040 bytes
// stay live, and each step frees one picked at random and allocates its
// replacement. Random addresses are what per-thread address
// deltas and zstd cannot shrink. argv[1] is the number of replacements
// (each an allocation and a free: 2 events).
#include <stdint.h>
#include <stdlib.h>

enum { kLive = 1024 };

static uint64_t state = 0x9e3779b97f4a7c15ull;
static uint64_t Next(void) {  // xorshift64*: the same sequence every run
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  return state * 0x2545f4914f6cdd1dull;
}

static void* __attribute__((noinline)) make(size_t size) { return malloc(size); }
static void __attribute__((noinline)) drop(void* p) { free(p); }

int main(int argc, char** argv) {
  long steps = argc > 1 ? atol(argv[1]) : 2000000;
  static char* live[kLive];
  for (int i = 0; i < kLive; ++i) live[i] = make(16 + Next() % 1025);
  for (long i = 0; i < steps; ++i) {
    uint64_t r = Next();
    size_t slot = r % kLive;
    drop(live[slot]);
    live[slot] = make(16 + (r >> 32) % 1025);
    live[slot][0] = (char)i;
  }
  for (int i = 0; i < kLive; ++i) drop(live[i]);
  return 0;
}
