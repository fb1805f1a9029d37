// A 1 MiB reservation touched at one byte in its middle: one page made
// resident, and one byte of it used, however far into the mapping it is.
#include <sys/mman.h>

int main(void) {
  char* p = mmap(0, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);  // SITE: mmap
  p[512 << 10] = 1;
  munmap(p, 1 << 20);
  return 0;
}
