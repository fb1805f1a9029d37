// Signal masks that would block SIGSYS while malloc's system calls are being
// counted: through pthread_sigmask (SIGSYS is kept out of it, the rest
// holds), in a handler run by sigsuspend with a full mask (the same), and
// with the raw system call, which the shim cannot see (the thread's calls
// are then estimated, and the program must run on unharmed).
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { kRounds = 10, kSize = 1 << 20 };

static void masked(void) {
  for (int i = 0; i < kRounds; ++i) free(malloc(kSize));  // SITE: masked
}

static void raw_masked(void) {
  for (int i = 0; i < kRounds; ++i) free(malloc(kSize));  // SITE: raw
}

static void* raw_thread(void* arg) {
  (void)arg;
  unsigned long all = ~0ul;
  syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all, NULL, 8);
  raw_masked();
  return NULL;
}

static volatile sig_atomic_t handled = 0;

static void on_usr1(int sig) {
  (void)sig;
  for (int i = 0; i < kRounds; ++i) free(malloc(kSize));  // SITE: in_handler
  handled = 1;
}

int main(void) {
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);

  sigset_t all, old, now;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  masked();
  pthread_sigmask(SIG_BLOCK, NULL, &now);
  int usr1_blocked = sigismember(&now, SIGUSR1);
  pthread_sigmask(SIG_SETMASK, &old, NULL);

  pthread_t t;
  pthread_create(&t, NULL, raw_thread, NULL);
  pthread_join(t, NULL);

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigfillset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, NULL);
  sigset_t block_usr1, wait_mask;
  sigemptyset(&block_usr1);
  sigaddset(&block_usr1, SIGUSR1);
  sigprocmask(SIG_BLOCK, &block_usr1, NULL);
  kill(getpid(), SIGUSR1);
  sigfillset(&wait_mask);
  sigdelset(&wait_mask, SIGUSR1);
  sigsuspend(&wait_mask);
  printf("usr1 blocked %d, handled %d\n", usr1_blocked, (int)handled);
  return 0;
}
