// Stacks for the shim's own unwinder to get right, built -O2 without frame
// pointers: recursion to varying depths (the last walk is reused from
// different frames each time), a frame with a variable-length array (its
// CFA comes from rbp), and calls from a signal handler (the trampoline's
// rule is a DWARF expression: libunwind takes that stack).
#include <signal.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) void* leaf(size_t n) {
  void* p = malloc(n);
  __asm__ volatile("" : : "r"(p) : "memory");
  return p;
}

__attribute__((noinline)) void* down(int depth, size_t n) {
  if (depth == 0) return leaf(n);
  void* p = down(depth - 1, n + 1);
  __asm__ volatile("" : : "r"(p) : "memory");  // no tail call
  return p;
}

__attribute__((noinline)) void* with_vla(int n) {
  char buf[n];
  memset(buf, n, (size_t)n);
  void* p = down(n % 5, (size_t)n);
  __asm__ volatile("" : : "r"(buf), "r"(p) : "memory");
  return p;
}

static void on_usr1(int sig) {
  (void)sig;
  free(leaf(64));
}

int main(void) {
  signal(SIGUSR1, on_usr1);
  for (int i = 0; i < 3000; ++i) {
    free(down(i % 17, 16));
    if (i % 3 == 0) free(with_vla(8 + i % 40));
    if (i % 500 == 0) raise(SIGUSR1);
  }
  return 0;
}
