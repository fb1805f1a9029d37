// A program with figures to hold budgets against, built twice: as is, and
// with -DEXTRA_SITE, which adds one page-allocator call site (the build a
// diff must tell apart from this one by exactly that site).
//
//   pages:  100 mmaps of 100 bytes, unmapped: 409,600 B in pages, 399,600 B
//           of page-rounding waste, 100 mmap + 100 munmap
//   heap:   50 mallocs of 64 bytes (from two calls on one line), freed
//   leak:   3 mallocs of 1,000 bytes, never freed
//   extra:  (EXTRA_SITE) 10 mmaps of 10 bytes, a table kept for the
//           program's life: 40,960 B in pages, 40,860 B of waste, 10 mmap
// No stdio: the C library allocates nothing of its own.
#include <stdlib.h>
#include <sys/mman.h>

static void* Map(size_t n) {
  return mmap(0, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);  // SITE: map
}

__attribute__((noinline)) static void page_objects(void) {
  void* maps[100];
  for (int i = 0; i < 100; ++i) maps[i] = Map(100);  // SITE: pages
  for (int i = 0; i < 100; ++i) munmap(maps[i], 100);  // SITE: pages_free
}

__attribute__((noinline)) static void heap_objects(void) {
  void* blocks[50];
  // Two calls on one line: two stacks, one key (the combined view merges them).
  for (int i = 0; i < 50; ++i) blocks[i] = (i & 1) ? malloc(64) : malloc(64);  // SITE: heap
  for (int i = 0; i < 50; ++i) free(blocks[i]);  // SITE: heap_free
}

__attribute__((noinline)) static void kept_objects(void) {
  static void* kept[3];
  for (int i = 0; i < 3; ++i) kept[i] = malloc(1000);  // SITE: leak
}

#ifdef EXTRA_SITE
__attribute__((noinline)) static void extra_pages(void) {
  static void* table[10];
  for (int i = 0; i < 10; ++i)
    table[i] = mmap(0, 10, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);  // SITE: extra
}
#endif

int main(void) {
  page_objects();
  heap_objects();
  kept_objects();
#ifdef EXTRA_SITE
  extra_pages();
#endif
  return 0;
}
