// Allocates 25 blocks and maps 5 pages, then leaves with the exit_group
// system call itself, as Go's runtime does: no atexit handler, no
// destructor, so the shim never hears of the exit. Exits with argv[1]
// (default 0).
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char** argv) {
  for (int i = 0; i < 25; ++i) free(malloc(100));  // SITE: malloc
  for (int i = 0; i < 5; ++i)
    mmap(NULL, 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);  // SITE: mmap
  syscall(SYS_exit_group, argc > 1 ? atoi(argv[1]) : 0);
  return 99;  // never reached
}
