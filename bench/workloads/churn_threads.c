// The churn workload on 4 threads: each makes a quarter of the malloc/free
// pairs, of 16 to 1040 bytes through two call levels, at the same time.
// argv[1] scales the total count.
#include <pthread.h>
#include <stdlib.h>

enum { kThreads = 4 };

static void* __attribute__((noinline)) make(size_t size) { return malloc(size); }

static void* churn(void* arg) {
  long pairs = *(long*)arg;
  for (long i = 0; i < pairs; ++i) {
    char* p = make(16 + (size_t)(i * 7919 % 1025));
    p[0] = (char)i;
    free(p);
  }
  return NULL;
}

int main(int argc, char** argv) {
  long each = (argc > 1 ? atol(argv[1]) : 2000000) / kThreads;
  pthread_t threads[kThreads];
  for (int t = 0; t < kThreads; ++t) pthread_create(&threads[t], NULL, churn, &each);
  for (int t = 0; t < kThreads; ++t) pthread_join(threads[t], NULL);
  return 0;
}
