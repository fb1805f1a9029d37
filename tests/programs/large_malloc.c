// glibc serves large blocks with their own mapping: 10 mallocs of
// 200,000 bytes (above the 128 KiB mmap threshold) each cost whole pages.
#include <malloc.h>
#include <stdlib.h>

int main(void) {
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);  // pin it: no dynamic adjustment
  for (int i = 0; i < 10; ++i) {
    char* p = malloc(200000);  // SITE: large
    p[0] = 1;
    free(p);
  }
  return 0;
}
