// A program with its own SIGSYS handler keeps working while the shim counts
// system calls with Syscall User Dispatch (whose traps are SIGSYS too).
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t handled = 0;

static void on_sigsys(int sig) {
  (void)sig;
  ++handled;
}

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigsys;
  sigfillset(&sa.sa_mask);  // a mask that would block SIGSYS
  sigaction(SIGSYS, &sa, NULL);
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  for (int i = 0; i < 10; ++i) {
    char* p = malloc(1 << 20);  // SITE: malloc
    p[0] = 1;
    if (i % 3 == 0) raise(SIGSYS);
    free(p);
  }
  printf("handled %d\n", (int)handled);
  return handled == 4 ? 0 : 1;
}
