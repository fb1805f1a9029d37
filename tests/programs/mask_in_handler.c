// A signal handler that runs while malloc is inside the kernel-counting
// window and changes the signal mask: the change must stick once the
// handler returns, as it would without pagewaste.
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

static volatile sig_atomic_t ticks = 0;

static void on_alarm(int sig) {
  (void)sig;
  ++ticks;
}

int main(void) {
  mallopt(M_MMAP_THRESHOLD, 64 * 1024);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval every_ms = {{0, 1000}, {0, 1000}};
  setitimer(ITIMER_REAL, &every_ms, NULL);
  // Allocate until some ticks have landed, many of them inside malloc/free.
  for (long i = 0; ticks < 50 && i < 50000000; ++i) free(malloc(128 * 1024));
  // Now block SIGUSR1 and check that it stays blocked.
  sigset_t set, now;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigprocmask(SIG_BLOCK, &set, NULL);
  for (int i = 0; i < 1000; ++i) free(malloc(128 * 1024));
  sigprocmask(SIG_BLOCK, NULL, &now);
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  int blocked = sigismember(&now, SIGUSR1);
  printf("ticks>=50 %d, SIGUSR1 blocked %d\n", ticks >= 50, blocked);
  return blocked && ticks >= 50 ? 0 : 1;
}
