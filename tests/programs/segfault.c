// Allocates 7 blocks, says so, then writes through a null pointer: the
// trace must end "signal 11" with the 7 allocations, and the run exit 139
// with the same output as without pagewaste.
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  static void* kept[7];
  for (int i = 0; i < 7; ++i) kept[i] = malloc(40);  // SITE: kept
  printf("before the fault\n");
  fflush(stdout);
  volatile int* null = NULL;
  *null = 1;
  return 0;
}
