// Blocks freed on another thread than the one that allocated them (issue
// 13): a producer allocates blocks of 16 to 1,040 bytes in batches of 256
// and hands each batch through a queue (a mutex and condition variables)
// to a consumer, which frees them, as a message-passing program does.
// argv[1] is the number of blocks (each an allocation and a free: 2 events).
#include <pthread.h>
#include <stdlib.h>

enum { kBatch = 256, kQueue = 16 };

struct Batch {
  void* blocks[kBatch];
  int count;
};

static struct Batch queue[kQueue];
static int head, tail;  // tail - head batches are waiting
static int done;
static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER, not_full = PTHREAD_COND_INITIALIZER;

static void* __attribute__((noinline)) make(size_t size) { return malloc(size); }

static void* Consume(void* unused) {
  (void)unused;
  for (;;) {
    pthread_mutex_lock(&mutex);
    while (head == tail && !done) pthread_cond_wait(&not_empty, &mutex);
    if (head == tail && done) {
      pthread_mutex_unlock(&mutex);
      return NULL;
    }
    struct Batch batch = queue[head % kQueue];
    ++head;
    pthread_cond_signal(&not_full);
    pthread_mutex_unlock(&mutex);
    for (int i = 0; i < batch.count; ++i) free(batch.blocks[i]);
  }
}

int main(int argc, char** argv) {
  long total = argc > 1 ? atol(argv[1]) : 2000000;
  pthread_t consumer;
  pthread_create(&consumer, NULL, Consume, NULL);
  struct Batch batch = {.count = 0};
  for (long i = 0; i < total; ++i) {
    char* p = make(16 + (size_t)(i * 7919 % 1025));
    p[0] = (char)i;
    batch.blocks[batch.count++] = p;
    if (batch.count == kBatch || i + 1 == total) {
      pthread_mutex_lock(&mutex);
      while (tail - head == kQueue) pthread_cond_wait(&not_full, &mutex);
      queue[tail % kQueue] = batch;
      ++tail;
      pthread_cond_signal(&not_empty);
      pthread_mutex_unlock(&mutex);
      batch.count = 0;
    }
  }
  pthread_mutex_lock(&mutex);
  done = 1;
  pthread_cond_signal(&not_empty);
  pthread_mutex_unlock(&mutex);
  pthread_join(consumer, NULL);
  return 0;
}
