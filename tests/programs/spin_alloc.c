// A program that computes without a system call while it waits: it says
// "ready" and spins until SIGUSR1, then mallocs and frees 1000 blocks of
// 48 bytes, says "done" and exits 0. Attaching to it must stop it in its
// own code, not in a system call.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static volatile sig_atomic_t g_go = 0;

static void Go(int sig) {
  (void)sig;
  g_go = 1;
}

int main(void) {
  signal(SIGUSR1, Go);
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("ready\n");
  volatile unsigned long spins = 0;
  while (!g_go) ++spins;
  for (int i = 0; i < 1000; ++i) {
    char* b = malloc(48);  // SITE: spin_block
    b[0] = 1;
    free(b);
  }
  printf("done\n");
  return 0;
}
