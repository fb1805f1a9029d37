// One call site that takes both kinds of memory: the same malloc call,
// on one line, asks 10 times for 200,000 bytes (above glibc's mmap
// threshold of 128 KiB: each block gets a mapping of its own) and 30 times
// for 100 bytes (from the heap's shared pages). Nothing is freed until
// every block is taken, so that the threshold does not move.
//
//   own mappings: 10, 2,000,000 B requested: 200,000 B on average
//   heap blocks:  30, 3,000 B requested: 100 B on average
// No stdio.
#include <stdlib.h>

int main(void) {
  void* blocks[40];
  for (int i = 0; i < 40; ++i) {
    blocks[i] = malloc(i % 4 == 0 ? 200000 : 100);  // SITE: mixed
    *(char*)blocks[i] = 1;
  }
  for (int i = 0; i < 40; ++i) free(blocks[i]);  // SITE: mixed_free
  return 0;
}
