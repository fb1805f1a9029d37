// 64 threads x 10,000 allocations (640,000 in all), each block kept until
// its thread's last allocation is made, then freed, so that the threads'
// allocations interleave in the shim's writer. Prints the sum of a byte of
// each block, which the run under pagewaste must print the same.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

enum { kThreads = 64, kPerThread = 10000 };

static void* worker(void* arg) {
  unsigned char** blocks = malloc(kPerThread * sizeof *blocks);  // SITE: array
  unsigned long sum = 0;
  for (int i = 0; i < kPerThread - 1; ++i) {
    blocks[i] = malloc(8 + (i % 100));  // SITE: block
    blocks[i][0] = (unsigned char)i;
    sum += blocks[i][0];
  }
  for (int i = 0; i < kPerThread - 1; ++i) free(blocks[i]);
  free(blocks);  // SITE: free_array
  *(unsigned long*)arg = sum;
  return NULL;
}

int main(void) {
  pthread_t threads[kThreads];
  unsigned long sums[kThreads];
  for (int i = 0; i < kThreads; ++i) pthread_create(&threads[i], NULL, worker, &sums[i]);
  unsigned long total = 0;
  for (int i = 0; i < kThreads; ++i) {
    pthread_join(threads[i], NULL);
    total += sums[i];
  }
  printf("%lu\n", total);
  return 0;
}
