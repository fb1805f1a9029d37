// The page-per-allocation pattern: each small object gets a mapping of its
// own, and each free is an munmap. argv[1] scales the count.
#include <stdlib.h>
#include <sys/mman.h>

int main(int argc, char** argv) {
  long n = argc > 1 ? atol(argv[1]) : 100000;
  for (long i = 0; i < n; ++i) {
    char* p = mmap(0, 24, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    p[0] = 1;
    munmap(p, 24);
  }
  return 0;
}
