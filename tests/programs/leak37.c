// Leaks 37 blocks of 100 bytes from one call site, and frees 10 others.
#include <stdlib.h>

static void* kept[37];

int main(void) {
  for (int i = 0; i < 37; ++i) kept[i] = malloc(100);  // SITE: leak
  for (int i = 0; i < 10; ++i) free(malloc(100));  // SITE: temporary
  return 0;
}
