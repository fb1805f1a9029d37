// A long-running program to attach to. Before it says "ready" it maps a
// page and mallocs 200 bytes, which the first round gives back. Then for
// each line read on stdin it makes one round of 1000 one-page mappings
// (mapped and unmapped) and 1000 mallocs of 100 bytes (allocated and
// freed), and says "round N". At end of input it exits with status 3.
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  char* early_page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  char* early_block = malloc(200);
  if (early_page == MAP_FAILED || !early_block) return 1;
  printf("ready\n");
  char line[64];
  int round = 0;
  while (fgets(line, sizeof line, stdin)) {
    if (early_block) {
      free(early_block);  // SITE: early_free
      munmap(early_page, 4096);  // SITE: early_unmap
      early_block = NULL;
    }
    for (int i = 0; i < 1000; ++i) {
      char* p = mmap(NULL, 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);  // SITE: page
      if (p == MAP_FAILED) return 1;
      p[0] = 1;
      munmap(p, 2);  // SITE: unpage
    }
    for (int i = 0; i < 1000; ++i) {
      char* b = malloc(100);  // SITE: block
      b[0] = 1;
      free(b);  // SITE: unblock
    }
    printf("round %d\n", ++round);
  }
  return 3;
}
