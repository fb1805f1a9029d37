// 8 threads x 50,000 allocations, each freed at once.
#include <pthread.h>
#include <stdlib.h>

enum { kThreads = 8, kPerThread = 50000 };

static void* worker(void* arg) {
  (void)arg;
  for (int i = 0; i < kPerThread; ++i) {
    void* p = malloc(16 + (i % 64));  // SITE: worker
    free(p);
  }
  return NULL;
}

int main(void) {
  pthread_t threads[kThreads];
  for (int i = 0; i < kThreads; ++i) pthread_create(&threads[i], NULL, worker, NULL);
  for (int i = 0; i < kThreads; ++i) pthread_join(threads[i], NULL);
  return 0;
}
