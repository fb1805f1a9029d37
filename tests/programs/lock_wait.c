// A free that waits for the arena's lock, made to happen for certain: one
// arena for all threads; a thread calls malloc_stats, which holds the arena
// lock while it writes to stderr, and stderr is a full pipe, so it stays
// there; another thread frees a block too large for its cache, which takes
// the same lock, and is seen waiting in futex (/proc/self/task/TID/syscall)
// before the pipe is drained and both go on. Prints whether the free waited.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static atomic_int stats_tid, freeing_tid, go_free, stats_done;
static void* block;

static void Pause(void) {
  struct timespec t = {0, 1000000};
  nanosleep(&t, NULL);
}

// Whether thread tid is inside system call nr, within about 5 seconds.
static int SeenIn(int tid, long nr) {
  char path[64], text[64];
  snprintf(path, sizeof path, "/proc/self/task/%d/syscall", tid);
  for (int tries = 0; tries < 5000; ++tries, Pause()) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0) continue;
    text[n] = 0;
    if (strtol(text, NULL, 10) == nr && text[0] != '-') return 1;
  }
  return 0;
}

static void* Stats(void* unused) {
  (void)unused;
  stats_tid = gettid();
  malloc_stats();  // holds the arena lock while its write to the full pipe waits
  stats_done = 1;
  return NULL;
}

static void __attribute__((noinline)) Release(void* p) {
  free(p);  // SITE: free
}

static void* Freeing(void* unused) {
  (void)unused;
  free(malloc(16));  // this thread's cache, set up before the lock is held
  freeing_tid = gettid();
  while (!go_free) Pause();
  Release(block);
  return NULL;
}

int main(void) {
  mallopt(M_ARENA_MAX, 1);
  free(malloc(100));
  block = malloc(4000);  // SITE: block

  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return 2;
  int saved_stderr = dup(2);
  dup2(pipe_fds[1], 2);
  fcntl(pipe_fds[1], F_SETFL, O_NONBLOCK);
  char filler[4096];
  memset(filler, 'x', sizeof filler);
  while (write(pipe_fds[1], filler, sizeof filler) > 0 || errno == EINTR) {
  }
  fcntl(2, F_SETFL, 0);  // the pipe's write end, blocking again

  pthread_t freeing, stats;
  pthread_create(&freeing, NULL, Freeing, NULL);
  while (!freeing_tid) Pause();
  pthread_create(&stats, NULL, Stats, NULL);
  while (!stats_tid) Pause();
  int stats_waits = SeenIn(stats_tid, SYS_write);
  go_free = 1;
  int free_waited = stats_waits && SeenIn(freeing_tid, SYS_futex);

  fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK);
  while (!stats_done) {
    if (read(pipe_fds[0], filler, sizeof filler) <= 0) Pause();
  }
  pthread_join(stats, NULL);
  pthread_join(freeing, NULL);
  dup2(saved_stderr, 2);
  printf(free_waited ? "the free waited on the arena lock\n" : "the free did not wait\n");
  return free_waited ? 0 : 1;
}
