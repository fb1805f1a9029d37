// Makes argv[1] (default 200,000) malloc/free pairs and prints how many: a
// trace of a few megabytes, for the full-disk test, where it cannot all be
// written and the program must run on regardless.
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
  long n = argc > 1 ? atol(argv[1]) : 200000;
  long made = 0;
  for (long i = 0; i < n; ++i) {
    char* p = malloc(24 + (i % 200));  // SITE: pair
    p[0] = 1;
    made += p[0];
    free(p);
  }
  printf("%ld pairs\n", made);
  return 0;
}
