// The image fork_exec execs into: 33 allocations of its own.
#include <stdlib.h>

int main(void) {
  for (int i = 0; i < 33; ++i) free(malloc(300));  // SITE: target
  return 0;
}
