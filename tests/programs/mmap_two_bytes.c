// 1000 direct mmap calls of 2 bytes each, then 1000 munmaps: the page
// allocator footgun in its plainest form.
#include <sys/mman.h>

enum { kCount = 1000 };
static char* maps[kCount];

int main(void) {
  for (int i = 0; i < kCount; ++i) {
    maps[i] = mmap(0, 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);  // SITE: mmap
    maps[i][0] = 1;
  }
  for (int i = 0; i < kCount; ++i) munmap(maps[i], 2);  // SITE: munmap
  return 0;
}
