// Four threads allocate 25,000 blocks each and then wait; once all have,
// the process is killed with SIGKILL while they are alive, their last chunks
// unfinished: the trace must still hold all 100,000 allocations.
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

static atomic_int done;

static void* allocate(void* arg) {
  (void)arg;
  static _Thread_local void* keep;
  for (int i = 0; i < 25000; ++i) keep = malloc(24);  // SITE: leak
  atomic_fetch_add(&done, 1);
  for (;;) pause();
  return NULL;
}

int main(void) {
  pthread_t threads[4];
  for (int i = 0; i < 4; ++i) pthread_create(&threads[i], NULL, allocate, NULL);
  while (atomic_load(&done) < 4) usleep(1000);
  raise(SIGKILL);
  return 0;
}
