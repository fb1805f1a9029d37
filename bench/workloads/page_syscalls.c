// The ptrace backend's workload (issue 13): a static program whose page
// allocator makes one system call per allocation and per free, as Zig's
// std.heap.page_allocator does. argv[1] pairs: 2 x argv[1] memory system
// calls, each one the tracer stops for.
#include <stdlib.h>
#include <sys/mman.h>

int main(int argc, char** argv) {
  long pairs = argc > 1 ? atol(argv[1]) : 1000;
  for (long i = 0; i < pairs; ++i) {
    char* p = mmap(0, 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    p[0] = 1;
    munmap(p, 2);
  }
  return 0;
}
