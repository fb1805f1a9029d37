// Installed set-uid root by a test and run by an unprivileged user with the
// shim preloaded: it does what a privileged program does with the C library
// (20,000 mallocs, far past any bootstrap pool, signal handlers, dlopen),
// prints what it got, becomes root for good and execs itself as "child",
// which prints every PAGEWASTE_ and LD_PRELOAD variable it was handed and
// exits with status 7.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char** environ;

static volatile sig_atomic_t g_signals = 0;

static void OnSignal(int sig) {
  (void)sig;
  ++g_signals;
}

static int Child(void) {
  printf("child euid=%d\n", (int)geteuid());
  for (char** e = environ; *e; ++e)
    if (strncmp(*e, "PAGEWASTE_", 10) == 0 || strncmp(*e, "LD_PRELOAD=", 11) == 0)
      printf("child sees %s\n", *e);
  return 7;
}

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "child") == 0) return Child();
  enum { kBlocks = 20000 };
  static void* blocks[kBlocks];
  int got = 0;
  for (int i = 0; i < kBlocks; ++i) got += (blocks[i] = malloc(48)) != NULL;
  for (int i = 0; i < kBlocks; ++i) free(blocks[i]);

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, NULL);
  signal(SIGUSR2, OnSignal);
  raise(SIGUSR1);
  raise(SIGUSR2);

  void* libm = dlopen("libm.so.6", RTLD_NOW);
  printf("euid=%d mallocs=%d signals=%d dlopen=%s\n", (int)geteuid(), got, (int)g_signals,
         libm ? "ok" : "failed");
  fflush(stdout);
  if (setuid(0) != 0) {
    perror("setuid");
    return 1;
  }
  execl("/proc/self/exe", argv[0], "child", (char*)NULL);
  perror("exec");
  return 1;
}
