// For pagewaste run --sample: 100,000 malloc(100)/free pairs, which
// sampling estimates; 50 malloc(1 MiB) with the mmap threshold pinned,
// which enter the kernel and so are recorded every one; then 20,000
// malloc(100) all live at once (2,000,000 B live at the peak).
#include <malloc.h>
#include <stdlib.h>

int main(void) {
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  for (int i = 0; i < 100000; ++i) {
    char* p = malloc(100);  // SITE: small
    p[0] = 1;
    free(p);
  }
  for (int i = 0; i < 50; ++i) {
    char* p = malloc(1 << 20);  // SITE: large
    p[0] = 1;
    free(p);  // SITE: large_free
  }
  // Last: freed, these 2 MB of heap would serve the 1 MiB blocks above.
  static char* kept[20000];
  for (int i = 0; i < 20000; ++i) kept[i] = malloc(100);  // SITE: kept
  for (int i = 0; i < 20000; ++i) free(kept[i]);
  return 0;
}
