// Maps ten 3-byte objects, writes their first and last byte, and never
// unmaps them: what they were used for is measured at exit.
#include <sys/mman.h>

int main(void) {
  for (int i = 0; i < 10; ++i) {
    char* p = mmap(0, 3, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);  // SITE: mmap
    p[0] = 1;
    p[2] = 7;
  }
  return 0;
}
