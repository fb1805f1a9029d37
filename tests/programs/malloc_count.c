// 1234 mallocs of 40 bytes at one call site, all freed.
#include <stdlib.h>

enum { kCount = 1234 };
static void* blocks[kCount];

int main(void) {
  for (int i = 0; i < kCount; ++i) blocks[i] = malloc(40);  // SITE: malloc
  for (int i = 0; i < kCount; ++i) free(blocks[i]);
  return 0;
}
