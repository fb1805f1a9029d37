// 8 threads, each making 50 malloc(1 MiB)/free pairs with the mmap
// threshold pinned and one arena for all (no per-thread arena set-up):
// every thread pays exactly 50 mmap and 50 munmap.
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>

enum { kThreads = 8, kPairs = 50 };

static void* worker(void* arg) {
  (void)arg;
  for (int i = 0; i < kPairs; ++i) {
    char* p = malloc(1 << 20);  // SITE: malloc
    p[0] = 1;
    free(p);  // SITE: free
  }
  return NULL;
}

int main(void) {
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  mallopt(M_ARENA_MAX, 1);
  pthread_t threads[kThreads];
  for (int i = 0; i < kThreads; ++i) pthread_create(&threads[i], NULL, worker, NULL);
  for (int i = 0; i < kThreads; ++i) pthread_join(threads[i], NULL);
  return 0;
}
