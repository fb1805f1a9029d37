// A fixed request stream for the allocator models: 100 requests of 100
// bytes, then 2 of 10,000 bytes, all live at once, then all freed. No stdio:
// nothing else allocates. docs/what-if.md works the figures out by hand.
#include <stdlib.h>

int main(void) {
  void* small[100];
  void* large[2];
  for (int i = 0; i < 100; ++i) small[i] = malloc(100);  // SITE: small
  for (int i = 0; i < 2; ++i) large[i] = malloc(10000);  // SITE: large
  for (int i = 0; i < 100; ++i) free(small[i]);
  for (int i = 0; i < 2; ++i) free(large[i]);
  return 0;
}
