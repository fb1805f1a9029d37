// The footgun, reproduced: a page allocator that maps its own pages for
// every object, serving many 2-byte requests, next to malloc serving the
// same requests. `make demo` profiles it.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

enum { kRequests = 1000, kSize = 2 };

// Like Zig's std.heap.page_allocator: every allocation is a fresh mapping
// (rounded up to a whole page by the kernel) and every free an munmap.
static void* page_alloc(size_t size) {
  void* p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

static void page_free(void* p, size_t size) { munmap(p, size); }

static void* objects_from_pages[kRequests];
static void* objects_from_malloc[kRequests];

static void build_with_page_allocator(void) {
  for (int i = 0; i < kRequests; ++i) {
    objects_from_pages[i] = page_alloc(kSize);
    memcpy(objects_from_pages[i], "x", kSize);
  }
}

static void build_with_malloc(void) {
  for (int i = 0; i < kRequests; ++i) {
    objects_from_malloc[i] = malloc(kSize);
    memcpy(objects_from_malloc[i], "y", kSize);
  }
}

int main(void) {
  build_with_page_allocator();
  build_with_malloc();
  for (int i = 0; i < kRequests; ++i) {
    page_free(objects_from_pages[i], kSize);
    free(objects_from_malloc[i]);
  }
  printf("served %d requests of %d bytes twice: from pages and from malloc\n", kRequests, kSize);
  return 0;
}
