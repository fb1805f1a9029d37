// Four threads allocate and free without pause while the main thread forks
// 20 children, each of which allocates 7 blocks and exits: every fork comes
// while other threads are in the middle of their own records. The parent
// stops the threads once the children are done. Counts: each child 7
// allocations at `child`; the threads `churn`, as many as they made.
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static atomic_int stop;
static atomic_long made;

static void* churn(void* arg) {
  (void)arg;
  long n = 0;
  while (!atomic_load(&stop)) {
    free(malloc(32 + n % 64));  // SITE: churn
    ++n;
  }
  atomic_fetch_add(&made, n);
  return NULL;
}

int main(void) {
  pthread_t threads[4];
  for (int i = 0; i < 4; ++i) pthread_create(&threads[i], NULL, churn, NULL);
  for (int i = 0; i < 20; ++i) {
    pid_t child = fork();
    if (child == 0) {
      for (int k = 0; k < 7; ++k) free(malloc(100));  // SITE: child
      _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 1;
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < 4; ++i) pthread_join(threads[i], NULL);
  printf("%ld\n", atomic_load(&made));
  return 0;
}
