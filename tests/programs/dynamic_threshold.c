// glibc's dynamic mmap threshold left alone: 100 x malloc(1 MiB) are mapped
// one by one; freeing them raises the threshold past 1 MiB, so the same 100
// requests a second time come from the heap, grown with brk.
#include <stdlib.h>

enum { kCount = 100, kSize = 1 << 20 };
static void* blocks[kCount];

static void first_round(void) {
  for (int i = 0; i < kCount; ++i) blocks[i] = malloc(kSize);  // SITE: first
}

static void second_round(void) {
  for (int i = 0; i < kCount; ++i) blocks[i] = malloc(kSize);  // SITE: second
}

static void release(void) {
  for (int i = 0; i < kCount; ++i) free(blocks[i]);  // SITE: release
}

int main(void) {
  free(malloc(16));  // the allocator's own start-up (tcache, first brk) happens here
  first_round();
  release();
  second_round();
  release();
  return 0;
}
