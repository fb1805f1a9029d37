// One page mapped and unmapped 100 calls deep: deeper than a backend's
// stack goes (64 frames), so both stacks are cut; their innermost frames,
// and the call site, are whole.
#include <sys/mman.h>

static int descend(int n) {
  if (n == 0) {
    char* p = mmap(0, 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);  // SITE: deep_map
    if (p == MAP_FAILED) return 1;
    munmap(p, 2);
    return 0;
  }
  return descend(n - 1);
}

int main(void) { return descend(100); }
