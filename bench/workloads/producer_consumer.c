// Blocks freed on another thread than the one that allocated them (issue
// 13): a producer allocates 16 to 1,040 bytes and hands each block through
// a bounded ring to a consumer, which frees it. argv[1] is the number of
// blocks (each an allocation and a free: 2 events).
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

enum { kRing = 4096 };
static void* ring[kRing];
static _Atomic long produced, consumed;
static long total;

static void* __attribute__((noinline)) make(size_t size) { return malloc(size); }

static void* Consume(void* unused) {
  (void)unused;
  for (long i = 0; i < total; ++i) {
    while (atomic_load_explicit(&produced, memory_order_acquire) <= i) {
    }
    free(ring[i % kRing]);
    atomic_store_explicit(&consumed, i + 1, memory_order_release);
  }
  return NULL;
}

int main(int argc, char** argv) {
  total = argc > 1 ? atol(argv[1]) : 2000000;
  pthread_t consumer;
  pthread_create(&consumer, NULL, Consume, NULL);
  for (long i = 0; i < total; ++i) {
    while (i - atomic_load_explicit(&consumed, memory_order_acquire) >= kRing) {
    }
    char* p = make(16 + (size_t)(i * 7919 % 1025));
    p[0] = (char)i;
    ring[i % kRing] = p;
    atomic_store_explicit(&produced, i + 1, memory_order_release);
  }
  pthread_join(consumer, NULL);
  return 0;
}
