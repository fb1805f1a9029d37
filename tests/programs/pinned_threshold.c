// 100 malloc(1 MiB)/free pairs with glibc's mmap threshold pinned: each
// malloc maps its own chunk and each free unmaps it.
#include <malloc.h>
#include <stdlib.h>

int main(void) {
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  for (int i = 0; i < 100; ++i) {
    char* p = malloc(1 << 20);  // SITE: malloc
    p[0] = 1;
    free(p);  // SITE: free
  }
  return 0;
}
