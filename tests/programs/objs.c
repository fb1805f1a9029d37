// One page allocator, page_alloc, called by make_obj (100 objects of 24
// bytes) and, built with -DTAG_CALLER, by make_tag too (10 tags of 8
// bytes). Both callers reach mmap on the same line of page_alloc: two call
// sites that only their callers tell apart.
//
//   make_obj: 100 mmaps of 24 B: 409,600 B in pages, 407,200 B of
//             page-rounding waste; one byte of each is written
//   make_tag: 10 mmaps of 8 B: 40,960 B in pages, 40,880 B of
//             page-rounding waste; one byte of each is written
// Every mapping is kept for the program's life. No stdio.
#include <sys/mman.h>

__attribute__((noinline)) static void* page_alloc(unsigned long n) {
  return mmap(0, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);  // SITE: page_alloc
}

__attribute__((noinline)) static void make_obj(void) {
  for (int i = 0; i < 100; ++i) *(char*)page_alloc(24) = 1;  // SITE: make_obj
}

#ifdef TAG_CALLER
__attribute__((noinline)) static void make_tag(void) {
  for (int i = 0; i < 10; ++i) *(char*)page_alloc(8) = 1;  // SITE: make_tag
}
#endif

int main(void) {
  make_obj();
#ifdef TAG_CALLER
  make_tag();
#endif
  return 0;
}
