// A running program to attach to with threads and a child. It says "ready"
// and waits for a line on stdin. Then: the main thread mallocs 1000 blocks
// of 300 bytes; four threads each free 250 of them (blocks freed on
// another thread than the one that made them), malloc and free 1000 blocks
// of 200 bytes, and malloc and free 10 blocks of 40 MiB (each, past
// glibc's largest mmap threshold, one mmap and one munmap inside the
// allocator). Then it forks a child that mallocs and frees 100 blocks of
// 100 bytes and exits 0; the parent waits for it, says "done" and waits
// for the end of its input to exit with status 4.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

enum { kThreads = 4, kHanded = 1000 };
static char* g_handed[kHanded];

static void* Work(void* arg) {
  long index = (long)arg;
  char** mine = g_handed + index * (kHanded / kThreads);
  for (int i = 0; i < kHanded / kThreads; ++i) free(mine[i]);  // SITE: unhand
  for (int i = 0; i < 1000; ++i) {
    char* b = malloc(200);  // SITE: small
    b[0] = 1;
    free(b);  // SITE: unsmall
  }
  for (int i = 0; i < 10; ++i) {
    char* big = malloc(40 << 20);  // SITE: big
    big[0] = 1;
    free(big);  // SITE: unbig
  }
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("ready\n");
  char line[64];
  if (!fgets(line, sizeof line, stdin)) return 1;
  for (int i = 0; i < kHanded; ++i) g_handed[i] = malloc(300);  // SITE: hand
  pthread_t threads[kThreads];
  for (long t = 0; t < kThreads; ++t) pthread_create(&threads[t], NULL, Work, (void*)t);
  for (int t = 0; t < kThreads; ++t) pthread_join(threads[t], NULL);
  pid_t child = fork();
  if (child == 0) {
    for (int i = 0; i < 100; ++i) {
      char* b = malloc(100);  // SITE: child
      b[0] = 1;
      free(b);
    }
    _exit(0);
  }
  int status = 0;
  waitpid(child, &status, 0);
  printf("done\n");
  while (fgets(line, sizeof line, stdin)) {
  }
  return 4;
}
