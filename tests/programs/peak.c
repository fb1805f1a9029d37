// A known peak: site A maps 10 pages, site B 20 more (the peak: 30 pages,
// held by A and B), A's go back, and site C maps 5 (25 pages: no new peak).
#include <sys/mman.h>

static char* map_page(void) {
  return mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

int main(void) {
  char* a[10];
  for (int i = 0; i < 10; ++i) a[i] = map_page();  // SITE: a
  for (int i = 0; i < 20; ++i) (void)map_page();  // SITE: b
  for (int i = 0; i < 10; ++i) munmap(a[i], 4096);
  for (int i = 0; i < 5; ++i) (void)map_page();  // SITE: c
  return 0;
}
