// Maps a page, then sleeps: the program a test kills the tracer under.
#include <sys/mman.h>
#include <unistd.h>

int main(void) {
  char* p = mmap(0, 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  p[0] = 1;
  sleep(30);
  return 0;
}
