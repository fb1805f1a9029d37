// Allocates 25 blocks and maps 5 pages, then leaves with the exit_group
// system call itself, as Go's runtime does: no atexit handler, no
// destructor, so the shim never hears of the exit. Exits with argv[1]
// (default 0). With "threads" as argv[2], three threads have each made 10
// allocations of their own and are still running when it leaves.
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_barrier_t g_started;

static void* Worker(void* unused) {
  (void)unused;
  for (int i = 0; i < 10; ++i) free(malloc(200));  // SITE: worker
  pthread_barrier_wait(&g_started);
  for (;;) pause();
  return NULL;
}

int main(int argc, char** argv) {
  if (argc > 2 && strcmp(argv[2], "threads") == 0) {
    pthread_barrier_init(&g_started, NULL, 4);
    for (int i = 0; i < 3; ++i) {
      pthread_t t;
      pthread_create(&t, NULL, Worker, NULL);
    }
    pthread_barrier_wait(&g_started);
  }
  for (int i = 0; i < 25; ++i) free(malloc(100));  // SITE: malloc
  for (int i = 0; i < 5; ++i)
    mmap(NULL, 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);  // SITE: mmap
  syscall(SYS_exit_group, argc > 1 ? atoi(argv[1]) : 0);
  return 99;  // never reached
}
